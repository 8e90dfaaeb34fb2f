"""MPNet-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/mpnet.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy in all-mpnet-base-v2's shape (HF MPNet names and
config: hidden 768, 12 layers, FFN 3072, 514 positions, 32 relative-position buckets;
N(0, 0.02) weights, biases and bias table, LayerNorm (1, 0), seed fixed), converted by
toprt-convert (dense, and with a top-k rule keeping 0.7 of the tokens at locations 3, 5,
7 and 9). The ONNX graph is onnx_graph.build_onnx over the same arrays in BERT's terms:
MPNet's layer is BERT's with renamed tensors, a zero token-type row, position ids from 2
(the table is shifted to match), and the relative position bias (MPNet's bucket formula,
in float32 as Hugging Face computes it) added to the scores of every layer.
"""

import math
from pathlib import Path

import numpy as np

from encoder_compare import RandomCheckpoint, main

SEED = 20240608
CFG = dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
           max_position_embeddings=514, relative_attention_num_buckets=32)
RENAME = {"attention.attn.q.": "attention.self.query.", "attention.attn.k.": "attention.self.key.",
          "attention.attn.v.": "attention.self.value.", "attention.attn.o.": "attention.output.dense.",
          "attention.LayerNorm.": "attention.output.LayerNorm."}


def make_checkpoint(folder: Path):
    c = RandomCheckpoint(folder, SEED, "MPNet-base")
    if not c.needed():
        return
    D, F, H = CFG["hidden_size"], CFG["intermediate_size"], CFG["num_attention_heads"]
    p = "mpnet."
    c.t[p + "embeddings.word_embeddings.weight"] = c.normal(CFG["vocab_size"], D)
    c.t[p + "embeddings.position_embeddings.weight"] = c.normal(CFG["max_position_embeddings"], D)
    c.norm(p + "embeddings.LayerNorm", D)
    c.t[p + "encoder.relative_attention_bias.weight"] = c.normal(CFG["relative_attention_num_buckets"], H)
    for l in range(CFG["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        for part in ("q", "k", "v", "o"):
            c.linear(q + "attention.attn." + part, D, D)
        c.norm(q + "attention.LayerNorm", D)
        c.linear(q + "intermediate.dense", F, D)
        c.linear(q + "output.dense", D, F)
        c.norm(q + "output.LayerNorm", D)
    c.linear("classifier.dense", D, D)
    c.linear("classifier.out_proj", 2, D)
    c.save(dict(CFG, model_type="mpnet", architectures=["MPNetForSequenceClassification"], hidden_act="gelu",
                layer_norm_eps=1e-5, pad_token_id=1, num_labels=2))


def buckets(rel):
    """MPNet's relative_position_bucket (32 buckets, max distance 128), float32."""
    n = -rel
    ret = np.where(n < 0, 16, 0)
    n = np.abs(n)
    large = 8 + (np.log(n.astype(np.float32) / np.float32(8)) / np.float32(math.log(16)) * np.float32(8)).astype(
        np.int64)
    return ret + np.where(n < 8, n, np.minimum(large, 15))


def bert_terms(folder: Path):
    """The checkpoint's arrays under BERT's names (what build_onnx reads), with the zero
    token-type row, the position table shifted so that row i is position id 2 + i, and
    the relative position bias expanded to [heads, 512, 512]."""
    from safetensors.numpy import load_file

    w = {}
    for k, v in load_file(str(folder / "model.safetensors")).items():
        k = k.removeprefix("mpnet.")
        for a, b in RENAME.items():
            k = k.replace(a, b)
        w[k] = v
    D, L = CFG["hidden_size"], CFG["max_position_embeddings"] - 2
    w["embeddings.token_type_embeddings.weight"] = np.zeros((1, D), np.float32)
    w["embeddings.position_embeddings.weight"] = w["embeddings.position_embeddings.weight"][2:]
    i = np.arange(L)
    with np.errstate(divide="ignore"):
        b = buckets(i[None, :] - i[:, None])  # [query, key]
    table = w.pop("encoder.relative_attention_bias.weight")  # [buckets, heads]
    bias = np.transpose(table[b], (2, 0, 1))  # [heads, query, key]
    cfg = dict(hidden_size=D, num_attention_heads=CFG["num_attention_heads"],
               num_hidden_layers=CFG["num_hidden_layers"], max_position_embeddings=L, layer_norm_eps=1e-5,
               position_bias=bias)
    return w, cfg


if __name__ == "__main__":
    main("mpnet", "MPNet-base", __doc__, make_checkpoint, bert_terms, "3,5,7,9")
