"""XLM-RoBERTa-base against ONNX Runtime fp32 on the same random weights, 1 x 128 tokens,
one thread, interleaved in one process (the new-encoder-types check).

    bash -c ". bench/compare/setup.sh"     # once: the venv, libtoprt.so, the binaries
    target/compare/venv/bin/python bench/compare/xlmr.py [--rounds 15] [--threads 1]

The checkpoint is written by numpy in xlm-roberta-base's shape (HF XLM-RoBERTa names,
`roberta.` prefix, and config: hidden 768, 12 layers, 12 heads, FFN 3072, vocabulary
250002, 514 positions, one token type, pad id 1, epsilon 1e-5, a sequence-classification
head; N(0, 0.02) weights and biases, LayerNorm (1, 0), seed fixed), converted by
toprt-convert (dense, and with a top-k rule keeping 0.7 of the tokens at locations 3, 5,
7 and 9). XLM-RoBERTa's encoder is BERT's, so the ONNX graph is onnx_graph.build_onnx
over the same arrays with the `roberta.` prefix dropped and the position table shifted
so that row i is position id pad + 1 + i = 2 + i, as RoBERTa numbers the positions of
non-pad tokens (the measured ids hold no pad id, so every position is 2 + i). Both graphs
(plain and the onnxruntime.transformers fusion) are timed and the faster is the
baseline. The outputs are compared first: mean-pooled embeddings, cosine >= 0.99999.
"""

from pathlib import Path

from encoder_compare import RandomCheckpoint, main

SEED = 20240614
CFG = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
           intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)
PAD = 1


def make_checkpoint(folder: Path):
    c = RandomCheckpoint(folder, SEED, "XLM-RoBERTa-base")
    if not c.needed():
        return
    D, F = CFG["hidden_size"], CFG["intermediate_size"]
    p = "roberta."
    c.t[p + "embeddings.word_embeddings.weight"] = c.normal(CFG["vocab_size"], D)
    c.t[p + "embeddings.position_embeddings.weight"] = c.normal(CFG["max_position_embeddings"], D)
    c.t[p + "embeddings.token_type_embeddings.weight"] = c.normal(CFG["type_vocab_size"], D)
    c.norm(p + "embeddings.LayerNorm", D)
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
    c.save(dict(CFG, model_type="xlm-roberta", architectures=["XLMRobertaForSequenceClassification"],
                hidden_act="gelu", layer_norm_eps=1e-5, position_embedding_type="absolute", pad_token_id=PAD,
                bos_token_id=0, eos_token_id=2, num_labels=2))


def bert_terms(folder: Path):
    """The checkpoint's arrays under BERT's names (what build_onnx reads), with the
    position table shifted so that row i is position id PAD + 1 + i; and the config."""
    from safetensors.numpy import load_file

    w = {k.removeprefix("roberta."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    w["embeddings.position_embeddings.weight"] = w["embeddings.position_embeddings.weight"][PAD + 1:]
    cfg = {k: CFG[k] for k in ("hidden_size", "num_attention_heads", "num_hidden_layers")}
    return w, dict(cfg, max_position_embeddings=CFG["max_position_embeddings"] - PAD - 1, layer_norm_eps=1e-5)


if __name__ == "__main__":
    main("xlmr", "XLM-RoBERTa-base", __doc__, make_checkpoint, bert_terms, "3,5,7,9")
