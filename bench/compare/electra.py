"""ELECTRA-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/electra.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy (HF ELECTRA names and config of electra-base:
embedding_size = hidden = 768, 12 layers, FFN 3072; N(0, 0.02) weights and biases,
LayerNorm (1, 0), seed fixed, a sequence-classification head), converted by
toprt-convert (dense, and with a top-k rule keeping 0.7 of the tokens at locations 3, 5,
7 and 9). ELECTRA-base's encoder is BERT-base's, so the ONNX graph is
onnx_graph.build_onnx over the same arrays with the `electra.` prefix dropped. (The
small models' embedding projection, 128 to 256, is checked against Hugging Face by the
golden tests; at base size there is none.)
"""

import argparse
import json
from pathlib import Path

import numpy as np

from common import log
from encoder_compare import compare

SEED = 20240606
CFG = dict(vocab_size=30522, embedding_size=768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
           intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def make_checkpoint(folder: Path):
    from safetensors.numpy import save_file

    marker = folder / ".generated"
    if marker.is_file() and marker.read_text() == f"seed={SEED}":
        return
    log(f"generating a random ELECTRA-base checkpoint in {folder} (seed {SEED}) ...")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    E, D, F = CFG["embedding_size"], CFG["hidden_size"], CFG["intermediate_size"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    t = {}
    p = "electra."
    t[p + "embeddings.word_embeddings.weight"] = normal(CFG["vocab_size"], E)
    t[p + "embeddings.position_embeddings.weight"] = normal(CFG["max_position_embeddings"], E)
    t[p + "embeddings.token_type_embeddings.weight"] = normal(CFG["type_vocab_size"], E)
    t[p + "embeddings.LayerNorm.weight"], t[p + "embeddings.LayerNorm.bias"] = np.ones(E, np.float32), np.zeros(
        E, np.float32)

    def linear(name, n_out, n_in):
        t[name + ".weight"], t[name + ".bias"] = normal(n_out, n_in), normal(n_out)

    for l in range(CFG["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            linear(q + part, D, D)
        linear(q + "intermediate.dense", F, D)
        linear(q + "output.dense", D, F)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[q + n + ".weight"], t[q + n + ".bias"] = np.ones(D, np.float32), np.zeros(D, np.float32)
    linear("classifier.dense", D, D)
    linear("classifier.out_proj", 2, D)
    save_file(t, str(folder / "model.safetensors"))
    cfg = dict(CFG, model_type="electra", architectures=["ElectraForSequenceClassification"], hidden_act="gelu",
               layer_norm_eps=1e-12, pad_token_id=0, num_labels=2)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    marker.write_text(f"seed={SEED}")


def bert_terms(folder: Path):
    """The checkpoint's arrays under BERT's names (what build_onnx reads), and the config."""
    from safetensors.numpy import load_file

    w = {k.removeprefix("electra."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    cfg = {k: CFG[k] for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings")}
    return w, dict(cfg, layer_norm_eps=1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    compare("electra", "ELECTRA-base", make_checkpoint, bert_terms, "3,5,7,9", args.rounds, args.threads)


if __name__ == "__main__":
    main()
