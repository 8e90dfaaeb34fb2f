"""The ONNX graph (onnx.helper, opset 17), laid out like a Hugging Face export, written
from the same numpy arrays toprt converts."""

import math
from pathlib import Path

import numpy as np

GRAPH_VERSION = 2  # bump when the ONNX builder changes (invalidates cached graphs)


def build_onnx(weights, cfg, head, path: Path):
    """head: 'classifier' (output `logits`) or 'embedding' (mean pooling + L2 norm:
    output `embedding`). Both also output `last_hidden_state`. With
    `cfg["position_bias"]` (float32 [heads, L, L], MPNet's relative position bias) its
    top-left [seq, seq] corner is added to every layer's scaled scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    D = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    dh = D // H
    L = cfg["num_hidden_layers"]
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    nodes, inits = [], []
    counter = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(op_type, inputs, name=None, **attrs):
        counter[0] += 1
        n = name or f"{op_type}_{counter[0]}"
        nodes.append(helper.make_node(op_type, list(inputs), [n + "_out"], name=n, **attrs))
        return n + "_out"

    f32 = lambda x: np.array(x, dtype=np.float32)  # noqa: E731
    i64 = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    c_sqrt2 = const("c_sqrt2", f32(math.sqrt(2.0)))
    c_one = const("c_one", f32(1.0))
    c_half = const("c_half", f32(0.5))
    c_scale = const("c_sqrt_head_dim", f32(math.sqrt(dh)))
    c_heads = const("c_shape_heads", i64([0, 0, H, dh]))
    c_hidden = const("c_shape_hidden", i64([0, 0, D]))
    c_ax0 = const("c_axes0", i64([0]))
    c_ax1 = const("c_axes1", i64([1]))
    c_ax2 = const("c_axes2", i64([2]))
    c_axm1 = const("c_axes_m1", i64([-1]))

    def W(name):  # HF Linear [out, in] -> MatMul [in, out]
        return const(name + ".weight", np.ascontiguousarray(weights[name + ".weight"].T))

    def B(name):
        return const(name + ".bias", weights[name + ".bias"])

    def linear(x, name):
        return op("Add", [op("MatMul", [x, W(name)]), B(name)])

    def layernorm(x, name):
        g = const(name + ".weight", weights[name + ".weight"])
        b = const(name + ".bias", weights[name + ".bias"])
        return op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    # Embeddings: word + position (sliced from a constant position-id row) + token type.
    pos_ids = const("position_ids", i64(np.arange(cfg["max_position_embeddings"])[None, :]))
    seq = op("Shape", ["input_ids"], start=1, end=2)
    pos = op("Slice", [pos_ids, const("c_zero1", i64([0])), seq, c_ax1])
    e = op("Gather", [const("embeddings.word_embeddings.weight", weights["embeddings.word_embeddings.weight"]),
                      "input_ids"])
    e = op("Add", [e, op("Gather", [const("embeddings.position_embeddings.weight",
                                          weights["embeddings.position_embeddings.weight"]), pos])])
    e = op("Add", [e, op("Gather", [const("embeddings.token_type_embeddings.weight",
                                          weights["embeddings.token_type_embeddings.weight"]), "token_type_ids"])])
    x = layernorm(e, "embeddings.LayerNorm")

    # Extended attention mask, as BERT's get_extended_attention_mask exports it:
    # (1 - mask[:, None, None, :]) * -10000, shared by every layer.
    m = op("Unsqueeze", [op("Unsqueeze", ["attention_mask", c_ax1]), c_ax2])
    m = op("Cast", [m], to=TensorProto.FLOAT)
    ext_mask = op("Mul", [op("Sub", [c_one, m]), const("c_mask_value", f32(-10000.0))])
    if cfg.get("position_bias") is not None:
        pb = const("position_bias", np.ascontiguousarray(cfg["position_bias"], dtype=np.float32))
        zeros = const("c_zero2", i64([0, 0]))
        ends = op("Concat", [seq, seq], axis=0)
        pb = op("Unsqueeze", [op("Slice", [pb, zeros, ends, const("c_axes12", i64([1, 2]))]), c_ax0])
        ext_mask = op("Add", [ext_mask, pb])  # [1, H, S, S]: mask and bias, added once per layer

    for layer in range(L):
        p = f"encoder.layer.{layer}."
        q = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.query"), c_heads])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.key"), c_heads])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.value"), c_heads])], perm=[0, 2, 1, 3])
        s = op("Add", [op("Div", [op("MatMul", [q, k]), c_scale]), ext_mask])
        pr = op("Softmax", [s], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [pr, v])], perm=[0, 2, 1, 3]), c_hidden])
        a = layernorm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(a, p + "intermediate.dense")
        # exact GELU: (h * (1 + erf(h / sqrt 2))) * 0.5
        g = op("Mul", [op("Mul", [h, op("Add", [op("Erf", [op("Div", [h, c_sqrt2])]), c_one])]), c_half])
        x = layernorm(op("Add", [linear(g, p + "output.dense"), a]), p + "output.LayerNorm")

    outputs = []
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out_hidden"))
    outputs.append(helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", D]))
    if head == "classifier":
        cls = op("Gather", [x, const("c_idx0", i64(0))], axis=1)
        pooled = op("Tanh", [linear(cls, "pooler.dense")])
        logits = linear(pooled, "classifier")
        nodes.append(helper.make_node("Identity", [logits], ["logits"], name="out_logits"))
        n_labels = weights["classifier.weight"].shape[0]
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_labels]))
    else:
        mf = op("Unsqueeze", [op("Cast", ["attention_mask"], to=TensorProto.FLOAT), c_axm1])  # [B,S,1]
        summed = op("ReduceSum", [op("Mul", [x, mf]), c_ax1], keepdims=0)  # [B,D]
        count = op("Clip", [op("ReduceSum", [mf, c_ax1], keepdims=0), const("c_tiny", f32(1e-9))])
        mean = op("Div", [summed, count])
        norm = op("Max", [op("ReduceL2", [mean], axes=[-1], keepdims=1), const("c_eps_norm", f32(1e-12))])  # axes: attribute in opset 17
        emb = op("Div", [mean, norm])
        nodes.append(helper.make_node("Identity", [emb], ["embedding"], name="out_embedding"))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", D]))
    del c_ax0

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    graph = helper.make_graph(nodes, f"bert_{head}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="toprt bench/compare")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
