"""ModernBERT-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/modernbert.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy in ModernBERT-base's shape (HF ModernBERT names, a
config.json with the keys transformers 5 writes: hidden 768, 12 heads, 22 layers, gated
FFN 2 x 1152, vocabulary 50368; every third layer global with rotary theta 160000, the
others a sliding window of 128 (|i - j| <= 64) with theta 10000; no biases; a
mean-pooling classification head; N(0, 0.02) weights, LayerNorm weights 1, seed fixed),
converted by toprt-convert (dense, and with a top-k rule keeping 0.7 of the tokens at
locations 7, 10, 13 and 16: each decided from a global layer's scores). The ONNX graph
is build_onnx below, over the same arrays: ModernBERT's pre-norm layer with opset-17
ops (LayerNormalization with a zero bias, MatMul on pre-transposed weights, the exact
erf GELU), the fused Wqkv as one MatMul (1/sqrt(head_dim) folded into its Q columns, as
toprt's converter does), rotary embeddings from precomputed cos/sin tables and the
sliding window as a precomputed additive mask (both sliced to the input's length). It
matches Hugging Face's ModernBertForSequenceClassification (eager attention) to ~1e-6.
Both graphs (plain and the onnxruntime.transformers fusion: Gelu and
SkipLayerNormalization; its attention fusion does not match rotary attention) are timed
and the faster is the baseline.
"""

import json
import math
from pathlib import Path

import numpy as np

from encoder_compare import RandomCheckpoint, main

SEED = 20240610
CFG = dict(vocab_size=50368, hidden_size=768, num_hidden_layers=22, num_attention_heads=12, intermediate_size=1152,
           max_position_embeddings=8192, global_attn_every_n_layers=3, local_attention=128,
           global_rope_theta=160000.0, local_rope_theta=10000.0, classifier_pooling="mean", num_labels=2)
GRAPH_MAX_LENGTH = 512  # rows of the graph's rotary tables and window mask: the longest input it takes
MASK_VALUE = -1e9  # additive mask of a left-out key (finite, so a row with no key left stays finite)


def hf_config(c: dict) -> dict:
    """config.json with the keys (and, sorted, the order) `save_pretrained` of transformers
    5 writes for ModernBertForSequenceClassification: `layer_types` and `rope_parameters`
    rather than the older global_attn_every_n_layers / *_rope_theta keys. `c` has CFG's
    keys; optional `attention_bias`, `mlp_bias`, `norm_bias`, `classifier_bias`."""
    n = c["global_attn_every_n_layers"]
    out = dict(
        architectures=["ModernBertForSequenceClassification"], model_type="modernbert",
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
        max_position_embeddings=c["max_position_embeddings"], local_attention=c["local_attention"],
        layer_types=["sliding_attention" if i % n else "full_attention" for i in range(c["num_hidden_layers"])],
        rope_parameters={"full_attention": {"rope_theta": c["global_rope_theta"], "rope_type": "default"},
                         "sliding_attention": {"rope_theta": c["local_rope_theta"], "rope_type": "default"}},
        classifier_pooling=c["classifier_pooling"], hidden_activation="gelu", classifier_activation="gelu",
        norm_eps=1e-5, attention_dropout=0.0, embedding_dropout=0.0, mlp_dropout=0.0, classifier_dropout=0.0,
        initializer_range=0.02, initializer_cutoff_factor=2.0, decoder_bias=True, deterministic_flash_attn=False,
        sparse_prediction=False, sparse_pred_ignore_index=-100, tie_word_embeddings=True,
        pad_token_id=50283, bos_token_id=50281, cls_token_id=50281, eos_token_id=50282, sep_token_id=50282,
        transformers_version="5.24.0")
    for k in ("attention_bias", "mlp_bias", "norm_bias", "classifier_bias"):
        out[k] = bool(c.get(k, False))
    if c["num_labels"] != 2:  # transformers writes the label maps only when they are not its default two
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(c["num_labels"])}
        out["label2id"] = {f"LABEL_{i}": i for i in range(c["num_labels"])}
    return dict(sorted(out.items()))


def make_checkpoint(folder: Path, cfg: dict = CFG, seed: int = SEED):
    """HF ModernBertForSequenceClassification's tensors (`model.` prefix, `head.`,
    `classifier.`); a bias only where `cfg` turns it on (the classifier's always)."""
    c = RandomCheckpoint(folder, seed, "ModernBERT-base" if cfg is CFG else "ModernBERT")
    if not c.needed():
        return
    D, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    ab, mb, nb, cb = (cfg.get(k, False) for k in ("attention_bias", "mlp_bias", "norm_bias", "classifier_bias"))

    def norm(name):
        c.t[name + ".weight"] = np.ones(D, np.float32)
        if nb:
            c.t[name + ".bias"] = np.zeros(D, np.float32)

    def linear(name, n_out, n_in, bias):
        c.t[name + ".weight"] = c.normal(n_out, n_in)
        if bias:
            c.t[name + ".bias"] = c.normal(n_out)

    p = "model."
    c.t[p + "embeddings.tok_embeddings.weight"] = c.normal(V, D)
    norm(p + "embeddings.norm")
    for l in range(cfg["num_hidden_layers"]):
        q = f"{p}layers.{l}."
        if l > 0:  # layer 0's attn_norm is an Identity
            norm(q + "attn_norm")
        linear(q + "attn.Wqkv", 3 * D, D, ab)
        linear(q + "attn.Wo", D, D, ab)
        norm(q + "mlp_norm")
        linear(q + "mlp.Wi", 2 * F, D, mb)
        linear(q + "mlp.Wo", D, F, mb)
    norm(p + "final_norm")
    linear("head.dense", D, D, cb)
    norm("head.norm")
    linear("classifier", cfg["num_labels"], D, True)
    c.save(hf_config(cfg))


def graph_terms(folder: Path):
    """The checkpoint's arrays (HF names) and what build_onnx needs of its config.json."""
    from safetensors.numpy import load_file

    hf = json.loads((folder / "config.json").read_text())
    types, rope = hf["layer_types"], hf["rope_parameters"]
    cfg = dict(hidden_size=hf["hidden_size"], num_attention_heads=hf["num_attention_heads"],
               num_hidden_layers=hf["num_hidden_layers"], norm_eps=hf.get("norm_eps", 1e-5),
               local_layers=[i for i, t in enumerate(types) if t == "sliding_attention"],
               global_theta=rope["full_attention"]["rope_theta"], local_theta=rope["sliding_attention"]["rope_theta"],
               window=hf["local_attention"] // 2, classifier_pooling=hf.get("classifier_pooling", "cls"),
               max_length=GRAPH_MAX_LENGTH)
    return load_file(str(folder / "model.safetensors")), cfg


def rotary_tables(theta: float, head_dim: int, n: int):
    """cos and sin [n, head_dim] of positions 0..n-1, in float32 as Hugging Face computes
    them (inv_freq = 1 / theta^(2i / head_dim), the angles repeated for both halves)."""
    inv = (np.float32(1.0) / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32)
                                                  / np.float32(head_dim)))).astype(np.float32)
    freqs = np.arange(n, dtype=np.float32)[:, None] * inv[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def build_onnx(w, cfg, head, path: Path):
    """The ONNX graph (onnx.helper, opset 17) of ModernBERT over HF-named arrays `w`.
    Inputs input_ids and attention_mask [batch, seq] (seq <= cfg["max_length"]); outputs
    `last_hidden_state` (after final_norm) and, by `head`, `logits` ('classifier':
    ModernBertForSequenceClassification's pooling, head and classifier) or `embedding`
    ('embedding': masked mean of the final states, L2-normalised)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    dh, n_max = D // H, cfg["max_length"]
    F = w["model.layers.0.mlp.Wo.weight"].shape[1]
    eps = float(cfg["norm_eps"])
    local = set(cfg["local_layers"])
    nodes, inits, names = [], [], set()
    counter = [0]

    def const(name, arr):
        if name not in names:
            names.add(name)
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(op_type, inputs, n_out=1, **attrs):
        counter[0] += 1
        n = f"{op_type}_{counter[0]}"
        outs = [f"{n}_out{i}" if n_out > 1 else f"{n}_out" for i in range(n_out)]
        nodes.append(helper.make_node(op_type, list(inputs), outs, name=n, **attrs))
        return outs if n_out > 1 else outs[0]

    f32 = lambda x: np.array(x, dtype=np.float32)  # noqa: E731
    i64 = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    c_one, c_half, c_sqrt2 = const("c_one", f32(1.0)), const("c_half", f32(0.5)), const("c_sqrt2", f32(math.sqrt(2)))
    c_heads = const("c_shape_heads", i64([0, 0, H, dh]))
    c_hidden = const("c_shape_hidden", i64([0, 0, D]))
    c_ax0 = const("c_axes0", i64([0]))

    def split(x, sizes):  # along the last axis
        return op("Split", [x, const("c_split_" + "_".join(map(str, sizes)), i64(sizes))], n_out=len(sizes), axis=-1)

    def linear(x, name, row_scale=None):
        """HF Linear [out, in] as MatMul on [in, out] (+ bias when the checkpoint has one);
        `row_scale` [out] multiplies the output features (folded into the constants)."""
        wt, b = w[name + ".weight"], w.get(name + ".bias")
        if row_scale is not None:
            wt = wt * row_scale[:, None]
            b = None if b is None else b * row_scale
        y = op("MatMul", [x, const(name + ".weight", np.ascontiguousarray(wt.T, dtype=np.float32))])
        return y if b is None else op("Add", [y, const(name + ".bias", b.astype(np.float32))])

    def layernorm(x, name):  # a zero bias where there is none: ORT's SkipLayerNorm fusions want one
        b = (const(name + ".bias", w[name + ".bias"]) if name + ".bias" in w
             else const("c_zero_bias", np.zeros(D, np.float32)))
        return op("LayerNormalization", [x, const(name + ".weight", w[name + ".weight"]), b], axis=-1, epsilon=eps)

    def gelu(h):  # exact GELU: (h * (1 + erf(h / sqrt 2))) * 0.5, the pattern ORT fuses into Gelu
        return op("Mul", [op("Mul", [h, op("Add", [op("Erf", [op("Div", [h, c_sqrt2])]), c_one])]), c_half])

    seq = op("Shape", ["input_ids"], start=1, end=2)
    zero1 = const("c_zero1", i64([0]))

    # Rotary tables per theta, [seq, 1, dh] (broadcast over heads of [batch, seq, H, dh]).
    # rotate_half(x) * sin = concat(x2, x1) * sin', sin' = sin with its first half negated.
    rope = {}
    for kind, theta in (("global", cfg["global_theta"]), ("local", cfg["local_theta"])):
        if kind == "local" and not local:
            continue
        cos, sin = rotary_tables(theta, dh, n_max)
        sin[:, :dh // 2] = -sin[:, :dh // 2]
        rope[kind] = tuple(op("Slice", [const(f"rope_{t}_{kind}", a[:, None, :]), zero1, seq, c_ax0])
                           for t, a in (("cos", cos), ("sin", sin)))

    def rotary(x, kind):
        cos, sin = rope[kind]
        x1, x2 = split(x, [dh // 2, dh // 2])
        return op("Add", [op("Mul", [x, cos]), op("Mul", [op("Concat", [x2, x1], axis=-1), sin])])

    # Additive masks: padding [batch, 1, 1, seq] for global layers; with the window
    # (query i sees key j iff |i - j| <= window) [batch, 1, seq, seq] for local ones.
    m = op("Cast", [op("Unsqueeze", ["attention_mask", const("c_axes12", i64([1, 2]))])], to=TensorProto.FLOAT)
    masks = {"global": op("Mul", [op("Sub", [c_one, m]), const("c_mask_value", f32(MASK_VALUE))])}
    if local:
        i = np.arange(n_max)
        win = np.where(np.abs(i[:, None] - i[None, :]) <= cfg["window"], 0.0, MASK_VALUE).astype(np.float32)
        ends = op("Concat", [seq, seq], axis=0)
        win = op("Slice", [const("window_mask", win), const("c_zero2", i64([0, 0])), ends,
                           const("c_axes01", i64([0, 1]))])
        masks["local"] = op("Add", [masks["global"], win])

    emb = const("model.embeddings.tok_embeddings.weight", w["model.embeddings.tok_embeddings.weight"])
    x = layernorm(op("Gather", [emb, "input_ids"]), "model.embeddings.norm")
    q_scale = np.concatenate([np.full(D, 1.0 / math.sqrt(dh)), np.ones(2 * D)]).astype(np.float32)
    for layer in range(L):
        p = f"model.layers.{layer}."
        kind = "local" if layer in local else "global"
        h = x if layer == 0 else layernorm(x, p + "attn_norm")
        q, k, v = (op("Reshape", [t, c_heads]) for t in split(linear(h, p + "attn.Wqkv", q_scale), [D, D, D]))
        q = op("Transpose", [rotary(q, kind)], perm=[0, 2, 1, 3])  # [B, H, S, dh]
        k = op("Transpose", [rotary(k, kind)], perm=[0, 2, 3, 1])  # [B, H, dh, S]
        v = op("Transpose", [v], perm=[0, 2, 1, 3])
        pr = op("Softmax", [op("Add", [op("MatMul", [q, k]), masks[kind]])], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [pr, v])], perm=[0, 2, 1, 3]), c_hidden])
        x = op("Add", [x, linear(ctx, p + "attn.Wo")])
        a, g = split(linear(layernorm(x, p + "mlp_norm"), p + "mlp.Wi"), [F, F])
        x = op("Add", [x, linear(op("Mul", [gelu(a), g]), p + "mlp.Wo")])
    x = layernorm(x, "model.final_norm")

    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", D])]
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out_hidden"))

    def masked_mean():
        c_ax1 = const("c_axes1", i64([1]))
        mf = op("Unsqueeze", [op("Cast", ["attention_mask"], to=TensorProto.FLOAT), const("c_axes_m1", i64([-1]))])
        summed = op("ReduceSum", [op("Mul", [x, mf]), c_ax1], keepdims=0)  # [B, D]
        return op("Div", [summed, op("Clip", [op("ReduceSum", [mf, c_ax1], keepdims=0), const("c_tiny", f32(1e-9))])])

    if head == "classifier":
        if cfg["classifier_pooling"] == "mean":
            pooled = masked_mean()
        else:
            pooled = op("Gather", [x, const("c_idx0", i64(0))], axis=1)
        logits = linear(layernorm(gelu(linear(pooled, "head.dense")), "head.norm"), "classifier")
        nodes.append(helper.make_node("Identity", [logits], ["logits"], name="out_logits"))
        n_labels = w["classifier.weight"].shape[0]
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_labels]))
    else:
        mean = masked_mean()
        norm = op("Max", [op("ReduceL2", [mean], axes=[-1], keepdims=1), const("c_eps_norm", f32(1e-12))])
        nodes.append(helper.make_node("Identity", [op("Div", [mean, norm])], ["embedding"], name="out_embedding"))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", D]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, f"modernbert_{head}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="toprt bench/compare")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


if __name__ == "__main__":
    main("modernbert", "ModernBERT-base", __doc__, make_checkpoint, graph_terms, "7,10,13,16", build_graph=build_onnx)
