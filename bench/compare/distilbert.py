"""DistilBERT-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/distilbert.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy (HF DistilBERT names and config, N(0, 0.02) weights
and biases, LayerNorm (1, 0), seed fixed), converted by toprt-convert (dense, and with a
top-k rule keeping 0.7 of the tokens at locations 1..5). The ONNX graph is
onnx_graph.build_onnx over the same arrays in BERT's terms: DistilBERT's layer is BERT's
with no token types, so they get a zero table, as in the toprt file. Both graphs (plain
and the onnxruntime.transformers fusion) are timed and the faster is the baseline. The
outputs are compared first: mean-pooled embeddings, cosine >= 0.99999.
"""

from pathlib import Path

import numpy as np

from encoder_compare import RandomCheckpoint, main

SEED = 20240604
CFG = dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512)


def make_checkpoint(folder: Path):
    c = RandomCheckpoint(folder, SEED, "DistilBERT-base")
    if not c.needed():
        return
    D, F = CFG["dim"], CFG["hidden_dim"]
    p = "distilbert."
    c.t[p + "embeddings.word_embeddings.weight"] = c.normal(CFG["vocab_size"], D)
    c.t[p + "embeddings.position_embeddings.weight"] = c.normal(CFG["max_position_embeddings"], D)
    for name in [p + "embeddings.LayerNorm"] + [f"{p}transformer.layer.{l}.{n}" for l in range(CFG["n_layers"])
                                               for n in ("sa_layer_norm", "output_layer_norm")]:
        c.norm(name, D)
    for l in range(CFG["n_layers"]):
        q = f"{p}transformer.layer.{l}."
        for part in ("q_lin", "k_lin", "v_lin", "out_lin"):
            c.linear(q + "attention." + part, D, D)
        c.linear(q + "ffn.lin1", F, D)
        c.linear(q + "ffn.lin2", D, F)
    c.linear("pre_classifier", D, D)
    c.linear("classifier", 2, D)
    c.save(dict(CFG, model_type="distilbert", architectures=["DistilBertForSequenceClassification"],
                activation="gelu", sinusoidal_pos_embds=False, pad_token_id=0, num_labels=2))


def bert_terms(folder: Path):
    """The checkpoint's arrays under BERT's names (what build_onnx reads), with the zero
    token-type table; and the config in BERT's keys."""
    from safetensors.numpy import load_file

    parts = {"attention.q_lin": "attention.self.query", "attention.k_lin": "attention.self.key",
             "attention.v_lin": "attention.self.value", "attention.out_lin": "attention.output.dense",
             "sa_layer_norm": "attention.output.LayerNorm", "ffn.lin1": "intermediate.dense",
             "ffn.lin2": "output.dense", "output_layer_norm": "output.LayerNorm"}
    w = {}
    for k, v in load_file(str(folder / "model.safetensors")).items():
        k = k.removeprefix("distilbert.").replace("transformer.layer.", "encoder.layer.")
        for a, b in parts.items():
            k = k.replace(a, b)
        w[k] = v
    w["embeddings.token_type_embeddings.weight"] = np.zeros((2, CFG["dim"]), np.float32)
    cfg = dict(hidden_size=CFG["dim"], num_attention_heads=CFG["n_heads"], num_hidden_layers=CFG["n_layers"],
               max_position_embeddings=CFG["max_position_embeddings"], layer_norm_eps=1e-12)
    return w, cfg


if __name__ == "__main__":
    main("distilbert", "DistilBERT-base", __doc__, make_checkpoint, bert_terms, "1,2,3,4,5")
