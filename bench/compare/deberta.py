"""DeBERTa-v3-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/deberta.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy in DeBERTa-v3-base's shape (HF DeBERTa-v2 names and
the config.json transformers 5 writes for DebertaV2ForSequenceClassification: hidden
768, 12 heads, 12 layers, FFN 3072, vocabulary 128100; no absolute positions and no
token types; relative attention with shared keys, c2p and p2c, 256 log buckets over 512
positions, LayerNorm'd relative embeddings; epsilon 1e-7; 3 labels; N(0, 0.02) weights,
biases and relative embeddings, LayerNorm (1, 0), seed fixed), converted by
toprt-convert (logits from the checkpoint's head; dense, and with a top-k rule keeping
0.7 of the tokens at locations 3, 5, 7 and 9).

The ONNX graph is build_onnx below, over the same arrays, laid out as a torch.onnx
export of Hugging Face's code gives it (opset 17): the LayerNorm of the relative
embeddings and their key_proj / query_proj in the graph (constant inputs only: ORT folds
them); the content-to-position and position-to-content scores as a MatMul of Q (of K)
against all 512 projected rows, then GatherElements with the bucketed relative-position
index (a precomputed constant, computed in float32 as Hugging Face does, sliced to the
input's length; p2c transposed after its gather); each of the three score terms divided
by sqrt(3 * head_dim); the exact erf GELU; ContextPooler (the first token, dense, GELU)
before the classifier. The key mask is additive (-1e9 on padded keys): Hugging Face's
[seq, seq] mask differs from it on padded query rows only, which never reach the
logits. The graph matches Hugging Face's DebertaV2ForSequenceClassification to ~1e-6
(logits within 3e-7). Both graphs (plain and the onnxruntime.transformers fusion: Gelu
and SkipLayerNormalization; its attention fusion does not match disentangled attention)
are timed and the faster is the baseline. The logits are compared first.
"""

import json
import math
from pathlib import Path

import numpy as np

from encoder_compare import RandomCheckpoint, main

SEED = 20240612
CFG = dict(vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
           max_position_embeddings=512, position_buckets=256, max_relative_positions=-1, num_labels=3)
MASK_VALUE = -1e9  # additive mask of a padded key


def hf_config(c: dict) -> dict:
    """config.json as `save_pretrained` of transformers 5 writes it for a
    DebertaV2ForSequenceClassification in DeBERTa-v3-base's shape (`c` has CFG's keys)."""
    labels = range(c["num_labels"])
    return dict(sorted(dict(
        architectures=["DebertaV2ForSequenceClassification"], model_type="deberta-v2",
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
        max_position_embeddings=c["max_position_embeddings"], position_biased_input=False, type_vocab_size=0,
        relative_attention=True, share_att_key=True, pos_att_type=["p2c", "c2p"],
        position_buckets=c["position_buckets"], max_relative_positions=c["max_relative_positions"],
        norm_rel_ebd="layer_norm", layer_norm_eps=1e-7, hidden_act="gelu", pooler_hidden_act="gelu",
        pooler_hidden_size=c["hidden_size"], pooler_dropout=0.0, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, initializer_range=0.02, pad_token_id=0, bos_token_id=None,
        eos_token_id=None, legacy=True, tie_word_embeddings=True, transformers_version="5.24.0",
        id2label={str(i): f"LABEL_{i}" for i in labels}, label2id={f"LABEL_{i}": i for i in labels}).items()))


def make_checkpoint(folder: Path, cfg: dict = CFG, seed: int = SEED):
    """HF DebertaV2ForSequenceClassification's tensors (`deberta.` prefix, `pooler.`,
    `classifier.`)."""
    c = RandomCheckpoint(folder, seed, "DeBERTa-v3-base" if cfg is CFG else "DeBERTa-v3")
    if not c.needed():
        return
    D, F = cfg["hidden_size"], cfg["intermediate_size"]
    p = "deberta."
    c.t[p + "embeddings.word_embeddings.weight"] = c.normal(cfg["vocab_size"], D)
    c.norm(p + "embeddings.LayerNorm", D)
    for l in range(cfg["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        for part in ("self.query_proj", "self.key_proj", "self.value_proj", "output.dense"):
            c.linear(q + "attention." + part, D, D)
        c.norm(q + "attention.output.LayerNorm", D)
        c.linear(q + "intermediate.dense", F, D)
        c.linear(q + "output.dense", D, F)
        c.norm(q + "output.LayerNorm", D)
    c.t[p + "encoder.rel_embeddings.weight"] = c.normal(2 * cfg["position_buckets"], D)
    c.norm(p + "encoder.LayerNorm", D)
    c.linear("pooler.dense", D, D)
    c.linear("classifier", cfg["num_labels"], D)
    c.save(hf_config(cfg))


def graph_terms(folder: Path):
    """The checkpoint's arrays (HF names) and what build_onnx needs of its config.json."""
    from safetensors.numpy import load_file

    hf = json.loads((folder / "config.json").read_text())
    v3 = dict(relative_attention=True, share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm")
    if any(hf.get(k) != v for k, v in v3.items()) or sorted(hf.get("pos_att_type", [])) != ["c2p", "p2c"] \
            or hf.get("position_buckets", -1) <= 0 or hf.get("type_vocab_size", 0) or hf.get("conv_kernel_size", 0):
        raise SystemExit("error: build_onnx covers DeBERTa-v3's configuration only (see CFG and hf_config)")
    max_rel = hf.get("max_relative_positions", -1)
    cfg = dict(hidden_size=hf["hidden_size"], num_attention_heads=hf["num_attention_heads"],
               num_hidden_layers=hf["num_hidden_layers"], layer_norm_eps=hf.get("layer_norm_eps", 1e-7),
               position_buckets=hf["position_buckets"],
               max_relative_positions=max_rel if max_rel >= 1 else hf["max_position_embeddings"],
               max_length=hf["max_position_embeddings"])
    return load_file(str(folder / "model.safetensors")), cfg


def log_bucket(rel, buckets: int, max_position: int):
    """Hugging Face's make_log_bucket_position, in float32 as it computes it: exact within
    (-buckets/2, buckets/2), log-spaced beyond, up to +-(buckets - 1) at max_position - 1."""
    mid = buckets // 2
    abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel))
    log_pos = np.ceil(np.log(abs_pos.astype(np.float32) / np.float32(mid))
                      / np.log(np.float32((max_position - 1) / mid)) * np.float32(mid - 1)) + np.float32(mid)
    return np.where(abs_pos <= mid, rel, (log_pos * np.sign(rel)).astype(np.int64)).astype(np.int64)


def relative_index(cfg, n: int):
    """The gather indices [n, n] of c2p and p2c: c2p[i, j] = clamp(bucket(i - j) + span),
    p2c[a, b] = clamp(-bucket(a - b) + span), span = position_buckets (Hugging Face's
    c2p_pos and p2c_pos; p2c's gathered scores are transposed after the gather)."""
    span = cfg["position_buckets"]
    i = np.arange(n)
    rel = log_bucket(i[:, None] - i[None, :], span, cfg["max_relative_positions"])
    return np.clip(rel + span, 0, 2 * span - 1), np.clip(-rel + span, 0, 2 * span - 1)


def build_onnx(w, cfg, head, path: Path):
    """The ONNX graph (onnx.helper, opset 17) of DeBERTa-v2/v3 over HF-named arrays `w`.
    Inputs input_ids and attention_mask [batch, seq] (seq <= cfg["max_length"]); outputs
    `last_hidden_state` and, by `head`, `logits` ('classifier': ContextPooler and the
    classifier) or `embedding` ('embedding': masked mean of the final states,
    L2-normalised)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    dh, n_max, span = D // H, cfg["max_length"], cfg["position_buckets"]
    eps = float(cfg["layer_norm_eps"])
    nodes, inits, names = [], [], set()
    counter = [0]

    def const(name, arr):
        if name not in names:
            names.add(name)
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(op_type, inputs, **attrs):
        counter[0] += 1
        n = f"{op_type}_{counter[0]}"
        nodes.append(helper.make_node(op_type, list(inputs), [n + "_out"], name=n, **attrs))
        return n + "_out"

    f32 = lambda x: np.array(x, dtype=np.float32)  # noqa: E731
    i64 = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    c_one, c_half, c_sqrt2 = const("c_one", f32(1.0)), const("c_half", f32(0.5)), const("c_sqrt2", f32(math.sqrt(2)))
    c_scale = const("c_scale", f32(math.sqrt(dh * 3)))  # 1 + c2p + p2c
    c_heads = const("c_shape_heads", i64([0, 0, H, dh]))
    c_hidden = const("c_shape_hidden", i64([0, 0, D]))
    c_rel_heads = const("c_shape_rel_heads", i64([2 * span, H, dh]))
    c_ax1 = const("c_axes1", i64([1]))

    def linear(x, name):  # HF Linear [out, in] as MatMul on [in, out] + bias
        y = op("MatMul", [x, const(name + ".weight", np.ascontiguousarray(w[name + ".weight"].T))])
        return op("Add", [y, const(name + ".bias", w[name + ".bias"])])

    def layernorm(x, name):
        g, b = const(name + ".weight", w[name + ".weight"]), const(name + ".bias", w[name + ".bias"])
        return op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    def gelu(h):  # exact GELU: (h * (1 + erf(h / sqrt 2))) * 0.5, the pattern ORT fuses into Gelu
        return op("Mul", [op("Mul", [h, op("Add", [op("Erf", [op("Div", [h, c_sqrt2])]), c_one])]), c_half])

    seq = op("Shape", ["input_ids"], start=1, end=2)
    batch = op("Shape", ["input_ids"], start=0, end=1)
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)  # [B, S]

    # Embeddings: LayerNorm(word), times the mask (DebertaV2Embeddings zeroes padded rows).
    emb = const("deberta.embeddings.word_embeddings.weight", w["deberta.embeddings.word_embeddings.weight"])
    x = layernorm(op("Gather", [emb, "input_ids"]), "deberta.embeddings.LayerNorm")
    x = op("Mul", [x, op("Unsqueeze", [mask, const("c_axes_m1", i64([-1]))])])

    # Additive key mask [B, 1, 1, S], shared by every layer.
    key_mask = op("Unsqueeze", [mask, const("c_axes12", i64([1, 2]))])
    key_mask = op("Mul", [op("Sub", [c_one, key_mask]), const("c_mask_value", f32(MASK_VALUE))])

    # Relative embeddings: LayerNorm(rel_embeddings[:2 span]) [2 span, D], from constants only.
    rel_w = w["deberta.encoder.rel_embeddings.weight"][: 2 * span]
    rel = layernorm(const("deberta.encoder.rel_embeddings.weight", rel_w), "deberta.encoder.LayerNorm")

    # Gather indices [B, H, S, S]: the [n_max, n_max] tables sliced to [S, S], expanded.
    c2p_table, p2c_table = relative_index(cfg, n_max)
    ends = op("Concat", [seq, seq], axis=0)
    zeros2, axes01 = const("c_zero2", i64([0, 0])), const("c_axes01", i64([0, 1]))
    idx_shape = op("Concat", [batch, const("c_heads", i64([H])), seq, seq], axis=0)
    c2p_idx, p2c_idx = (op("Expand", [op("Slice", [const(n, t), zeros2, ends, axes01]), idx_shape])
                        for n, t in (("c2p_index", c2p_table), ("p2c_index", p2c_table)))

    def heads(t, perm):  # [B, S, D] -> [B, H, S, dh] (perm 0 2 1 3) or [B, H, dh, S] (0 2 3 1)
        return op("Transpose", [op("Reshape", [t, c_heads])], perm=perm)

    def rel_heads(t):  # [2 span, D] -> [H, dh, 2 span]
        return op("Transpose", [op("Reshape", [t, c_rel_heads])], perm=[1, 2, 0])

    for layer in range(L):
        p = f"deberta.encoder.layer.{layer}."
        a = p + "attention.self."
        q = heads(linear(x, a + "query_proj"), [0, 2, 1, 3])  # [B, H, S, dh]
        k = heads(linear(x, a + "key_proj"), [0, 2, 1, 3])
        v = heads(linear(x, a + "value_proj"), [0, 2, 1, 3])
        pos_k = rel_heads(linear(rel, a + "key_proj"))  # share_att_key: the layer's own projections
        pos_q = rel_heads(linear(rel, a + "query_proj"))
        s = op("Div", [op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])]), c_scale])
        c2p = op("GatherElements", [op("MatMul", [q, pos_k]), c2p_idx], axis=-1)  # [B, H, S, S]
        p2c = op("GatherElements", [op("MatMul", [k, pos_q]), p2c_idx], axis=-1)  # [B, H, key, query]
        s = op("Add", [s, op("Div", [c2p, c_scale])])
        s = op("Add", [s, op("Div", [op("Transpose", [p2c], perm=[0, 1, 3, 2]), c_scale])])
        pr = op("Softmax", [op("Add", [s, key_mask])], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [pr, v])], perm=[0, 2, 1, 3]), c_hidden])
        x = layernorm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = gelu(linear(x, p + "intermediate.dense"))
        x = layernorm(op("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")

    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", D])]
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out_hidden"))
    if head == "classifier":
        first = op("Gather", [x, const("c_idx0", i64(0))], axis=1)
        logits = linear(gelu(linear(first, "pooler.dense")), "classifier")
        nodes.append(helper.make_node("Identity", [logits], ["logits"], name="out_logits"))
        n_labels = w["classifier.weight"].shape[0]
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_labels]))
    else:
        mf = op("Unsqueeze", [mask, const("c_axes_m1", i64([-1]))])  # [B, S, 1]
        summed = op("ReduceSum", [op("Mul", [x, mf]), c_ax1], keepdims=0)
        mean = op("Div", [summed, op("Clip", [op("ReduceSum", [mf, c_ax1], keepdims=0), const("c_tiny", f32(1e-9))])])
        norm = op("Max", [op("ReduceL2", [mean], axes=[-1], keepdims=1), const("c_eps_norm", f32(1e-12))])
        nodes.append(helper.make_node("Identity", [op("Div", [mean, norm])], ["embedding"], name="out_embedding"))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", D]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, f"deberta_v2_{head}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="toprt bench/compare")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


if __name__ == "__main__":
    main("deberta", "DeBERTa-v3-base", __doc__, make_checkpoint, graph_terms, "3,5,7,9", build_graph=build_onnx,
         head="classifier")
