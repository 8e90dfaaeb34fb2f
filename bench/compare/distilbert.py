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

import argparse
import json
from pathlib import Path

import numpy as np

from common import log
from encoder_compare import compare

SEED = 20240604
CFG = dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512)


def make_checkpoint(folder: Path):
    from safetensors.numpy import save_file

    marker = folder / ".generated"
    if marker.is_file() and marker.read_text() == f"seed={SEED}":
        return
    log(f"generating a random DistilBERT-base checkpoint in {folder} (seed {SEED}) ...")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    D, F = CFG["dim"], CFG["hidden_dim"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    t = {}
    p = "distilbert."
    t[p + "embeddings.word_embeddings.weight"] = normal(CFG["vocab_size"], D)
    t[p + "embeddings.position_embeddings.weight"] = normal(CFG["max_position_embeddings"], D)
    for name in [p + "embeddings.LayerNorm"] + [f"{p}transformer.layer.{l}.{n}" for l in range(CFG["n_layers"])
                                               for n in ("sa_layer_norm", "output_layer_norm")]:
        t[name + ".weight"], t[name + ".bias"] = np.ones(D, np.float32), np.zeros(D, np.float32)

    def linear(name, n_out, n_in):
        t[name + ".weight"], t[name + ".bias"] = normal(n_out, n_in), normal(n_out)

    for l in range(CFG["n_layers"]):
        q = f"{p}transformer.layer.{l}."
        for part in ("q_lin", "k_lin", "v_lin", "out_lin"):
            linear(q + "attention." + part, D, D)
        linear(q + "ffn.lin1", F, D)
        linear(q + "ffn.lin2", D, F)
    linear("pre_classifier", D, D)
    linear("classifier", 2, D)
    save_file(t, str(folder / "model.safetensors"))
    cfg = dict(CFG, model_type="distilbert", architectures=["DistilBertForSequenceClassification"],
               activation="gelu", sinusoidal_pos_embds=False, pad_token_id=0, num_labels=2)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    marker.write_text(f"seed={SEED}")


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    compare("distilbert", "DistilBERT-base", make_checkpoint, bert_terms, "1,2,3,4,5", args.rounds, args.threads)


if __name__ == "__main__":
    main()
