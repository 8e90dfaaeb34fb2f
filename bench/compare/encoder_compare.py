"""The new-encoder-types check, shared by distilbert.py, electra.py, mpnet.py and
modernbert.py: a random base-sized checkpoint of one type, converted dense and pruned
(top-k), against ONNX Runtime fp32 on the same arrays (in BERT's terms, or the type's own
graph), 1 x 128 tokens, interleaved in one process. The outputs are compared first:
mean-pooled embeddings, cosine >= 0.99999."""

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from common import OUT, REPO, log, run
from models import random_ids
from onnx_graph import build_onnx
from ort_side import feeds_for, ort_fused, ort_session
from timing import interleave, paired_ratio, summary
from toprt_ctypes import OUTPUT_EMBEDDING, Batch, Lib


class RandomCheckpoint:
    """A random checkpoint written by numpy: N(0, 0.02) weights and biases, LayerNorm
    (1, 0), from a fixed seed. `needed()` is False when `folder` already holds the one of
    this seed; otherwise fill `t` (with `normal`, `norm`, `linear`) and `save(config)`."""

    def __init__(self, folder: Path, seed: int, what: str):
        self.folder, self.seed, self.what = folder, seed, what
        self.marker = folder / ".generated"
        self.rng = np.random.default_rng(seed)
        self.t = {}

    def needed(self) -> bool:
        if self.marker.is_file() and self.marker.read_text() == f"seed={self.seed}":
            return False
        log(f"generating a random {self.what} checkpoint in {self.folder} (seed {self.seed}) ...")
        self.folder.mkdir(parents=True, exist_ok=True)
        return True

    def normal(self, *shape):
        return (self.rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    def norm(self, name: str, width: int):
        self.t[name + ".weight"], self.t[name + ".bias"] = np.ones(width, np.float32), np.zeros(width, np.float32)

    def linear(self, name: str, n_out: int, n_in: int):
        self.t[name + ".weight"] = self.normal(n_out, n_in)
        self.t[name + ".bias"] = self.normal(n_out)

    def save(self, config: dict):
        from safetensors.numpy import save_file

        save_file(self.t, str(self.folder / "model.safetensors"))
        (self.folder / "config.json").write_text(json.dumps(config, indent=2))
        self.marker.write_text(f"seed={self.seed}")


def main(name: str, title: str, doc: str, make_checkpoint, bert_terms, prune_layers: str, build_graph=build_onnx):
    """The command line of one encoder type's script."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    compare(name, title, make_checkpoint, bert_terms, prune_layers, args.rounds, args.threads, build_graph)


def compare(name: str, title: str, make_checkpoint, bert_terms, prune_layers: str, rounds: int, threads: int,
            build_graph=build_onnx):
    """`make_checkpoint(folder)` writes the checkpoint; `bert_terms(folder)` gives its
    arrays under BERT's names and the config build_onnx reads (or, with `build_graph`,
    whatever that builder reads: `build_graph(arrays, config, "embedding", path)`)."""
    import os

    os.chdir(REPO)
    out = OUT / name
    ckpt = out / "ckpt"
    make_checkpoint(ckpt)
    bins = Path("target/release")
    dense_m, pruned_m = out / "dense.toprt", out / "pruned.toprt"
    for m, extra in ((dense_m, []), (pruned_m, ["--keep-ratio", "0.7", "--prune-layers", prune_layers])):
        if not m.is_file():
            run([bins / "toprt-convert", ckpt, "-o", m, "--no-tokenizer", "--pooling", "mean", *extra])
    w, cfg = bert_terms(ckpt)
    plain, fused = out / f"{name}-plain.onnx", out / f"{name}-fused.onnx"
    if not plain.is_file():
        build_graph(w, cfg, "embedding", plain)
    if not fused.is_file():
        log(f"fusion: {ort_fused(plain, fused, cfg)}")
    lib = Lib(bins / "libtoprt.so")
    tsess = lib.model(dense_m).session(threads)
    psess = lib.model(pruned_m).session(threads)
    rows = random_ids(1, 128)
    batch = Batch(rows)
    osess = {n: ort_session(path, threads) for n, path in (("plain", plain), ("fused", fused)) if path.is_file()}
    # Each graph's own inputs (a type without token types has no token_type_ids).
    all_feeds = feeds_for(rows)
    feeds = {n: {i.name: all_feeds[i.name] for i in s.get_inputs()} for n, s in osess.items()}

    # The same answers first: mean-pooled embeddings (toprt's unnormalised, ORT's
    # normalised: the cosine does not care).
    t_emb = np.asarray(tsess.floats(batch, False, "embedding")[0], np.float64)
    for n, s in osess.items():
        o = s.run(["embedding"], feeds[n])[0][0].astype(np.float64)
        cos = float(t_emb @ o / np.linalg.norm(t_emb) / np.linalg.norm(o))
        log(f"toprt dense vs ORT {n}: embedding cosine {cos:.7f}")
        assert cos >= 0.99999, f"ORT {n} and toprt disagree: cosine {cos}"

    cands = [("toprt dense", lambda: tsess.time_run(batch, False, OUTPUT_EMBEDDING)),
             ("toprt pruned", lambda: psess.time_run(batch, True, OUTPUT_EMBEDDING))]
    cands += [(f"ORT fp32 {n}", lambda s=s, f=feeds[n]: s.run(["embedding"], f)) for n, s in osess.items()]
    times = interleave(cands, rounds, warmup=2, pause=0.05)
    ort_name = min((k for k in times if k.startswith("ORT")), key=lambda k: statistics.median(times[k]))
    log(f"\n{title} (random weights), 1 x 128 tokens, {threads} thread(s), {rounds} rounds; "
        f"toprt {lib.version}, kernel {tsess.kernel}")
    for k, ts in times.items():
        s = summary(ts)
        log(f"  {k:<18} median {s['median_ms']:7.2f} ms  p90 {s['p90_ms']:7.2f} ms")
    log(f"  ORT baseline: {ort_name} (the faster graph)")
    log(f"  toprt dense / ORT fp32 : {paired_ratio(times['toprt dense'], times[ort_name]):.3f} "
        f"(median of per-round ratios; goal <= 0.95)")
    log(f"  toprt pruned / ORT fp32: {paired_ratio(times['toprt pruned'], times[ort_name]):.3f}")
    log(f"  pruned speedup over dense: {paired_ratio(times['toprt dense'], times['toprt pruned']):.2f}x")
    log(f"  engine-bench on the pruned file: ./target/release/engine-bench --model {pruned_m} --threads {threads}")
