"""The models and inputs measured: a deterministic random BERT-base checkpoint, the ToP
rank-bin schedule of its pruned twin, and random token ids."""

import json
from pathlib import Path

import numpy as np

from common import CLS, SEP, log

SEED = 20240601

# The pruned model's default schedule is ToP's own rule: rank bins, bin_num 25, prune
# locations 2..11, each keeping 22 of the 25 bins (two kept bins swapped with dropped
# ones, as learned masks are not monotone), all gates on: ~39% token sparsity at 128
# tokens (see the printed schedule). It is written as a zs file (token_z, pruner_z) in
# JSON and converted with `toprt-convert --zs`. `--keep-ratio` replaces it with a
# top-k keep ratio per layer.
TOP_BIN_NUM, TOP_FIRST, TOP_KEPT_BINS = 25, 2, 22


def write_top_zs(path: Path, num_layers: int):
    rng = np.random.default_rng(SEED)
    token_z = []
    for _ in range(TOP_FIRST, num_layers):
        z = [1.0] * TOP_KEPT_BINS + [0.0] * (TOP_BIN_NUM - TOP_KEPT_BINS)
        for _ in range(2):
            a = int(rng.integers(1, TOP_KEPT_BINS))
            b = int(rng.integers(TOP_KEPT_BINS, TOP_BIN_NUM))
            z[a], z[b] = z[b], z[a]
        token_z.append(z)
    path.write_text(json.dumps({"token_z": token_z, "pruner_z": [1.0] * len(token_z)}))


BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                 layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0)


def make_random_bert(folder: Path):
    """Writes config.json + model.safetensors (HF names, `bert.` prefix + classifier).
    Linear weights and embeddings ~ N(0, 0.02); linear biases ~ N(0, 0.02) too (HF
    initialises them to 0; random biases make the correctness check also cover them);
    LayerNorm weight 1, bias 0. Deterministic (numpy PCG64, fixed seed)."""
    from safetensors.numpy import save_file

    marker = folder / ".generated"
    tag = f"seed={SEED} v1"
    if marker.is_file() and marker.read_text() == tag and (folder / "model.safetensors").is_file():
        return
    log(f"generating the random BERT-base checkpoint in {folder} (seed {SEED}) ...")
    folder.mkdir(parents=True, exist_ok=True)
    c = BERT_BASE
    rng = np.random.default_rng(SEED)
    D, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    t = {}
    p = "bert."
    t[p + "embeddings.word_embeddings.weight"] = normal(V, D)
    t[p + "embeddings.position_embeddings.weight"] = normal(c["max_position_embeddings"], D)
    t[p + "embeddings.token_type_embeddings.weight"] = normal(c["type_vocab_size"], D)

    def ln(name):
        t[name + ".weight"] = np.ones(D, np.float32)
        t[name + ".bias"] = np.zeros(D, np.float32)

    def linear(name, n_out, n_in):
        t[name + ".weight"] = normal(n_out, n_in)
        t[name + ".bias"] = normal(n_out)

    ln(p + "embeddings.LayerNorm")
    for layer in range(c["num_hidden_layers"]):
        q = f"{p}encoder.layer.{layer}."
        for part in ("query", "key", "value"):
            linear(q + "attention.self." + part, D, D)
        linear(q + "attention.output.dense", D, D)
        ln(q + "attention.output.LayerNorm")
        linear(q + "intermediate.dense", F, D)
        linear(q + "output.dense", D, F)
        ln(q + "output.LayerNorm")
    linear(p + "pooler.dense", D, D)
    linear("classifier", 2, D)
    save_file(t, str(folder / "model.safetensors"))
    cfg = dict(c, model_type="bert", architectures=["BertForSequenceClassification"], num_labels=2,
               id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1},
               position_embedding_type="absolute", initializer_range=0.02)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    marker.write_text(tag)


def load_weights(folder: Path):
    from safetensors.numpy import load_file

    w = load_file(str(folder / "model.safetensors"))
    out = {}
    for k, v in w.items():
        out[k[5:] if k.startswith("bert.") else k] = v
    return out


def random_ids(batch, length, seed=7, vocab=30522):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(batch):
        r = rng.integers(1000, vocab, size=length).tolist()
        r[0], r[-1] = CLS, SEP
        rows.append(r)
    return rows
