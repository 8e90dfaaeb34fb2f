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

from pathlib import Path

from encoder_compare import RandomCheckpoint, main

SEED = 20240606
CFG = dict(vocab_size=30522, embedding_size=768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
           intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def make_checkpoint(folder: Path):
    c = RandomCheckpoint(folder, SEED, "ELECTRA-base")
    if not c.needed():
        return
    E, D, F = CFG["embedding_size"], CFG["hidden_size"], CFG["intermediate_size"]
    p = "electra."
    c.t[p + "embeddings.word_embeddings.weight"] = c.normal(CFG["vocab_size"], E)
    c.t[p + "embeddings.position_embeddings.weight"] = c.normal(CFG["max_position_embeddings"], E)
    c.t[p + "embeddings.token_type_embeddings.weight"] = c.normal(CFG["type_vocab_size"], E)
    c.norm(p + "embeddings.LayerNorm", E)
    for l in range(CFG["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            c.linear(q + part, D, D)
        c.linear(q + "intermediate.dense", F, D)
        c.linear(q + "output.dense", D, F)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            c.norm(q + n, D)
    c.linear("classifier.dense", D, D)
    c.linear("classifier.out_proj", 2, D)
    c.save(dict(CFG, model_type="electra", architectures=["ElectraForSequenceClassification"], hidden_act="gelu",
                layer_norm_eps=1e-12, pad_token_id=0, num_labels=2))


def bert_terms(folder: Path):
    """The checkpoint's arrays under BERT's names (what build_onnx reads), and the config."""
    from safetensors.numpy import load_file

    w = {k.removeprefix("electra."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    cfg = {k: CFG[k] for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings")}
    return w, dict(cfg, layer_norm_eps=1e-12)


if __name__ == "__main__":
    main("electra", "ELECTRA-base", __doc__, make_checkpoint, bert_terms, "3,5,7,9")
