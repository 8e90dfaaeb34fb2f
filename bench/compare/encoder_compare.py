"""The new-encoder-types check, shared by distilbert.py, electra.py, mpnet.py,
modernbert.py, deberta.py and xlmr.py: a random base-sized checkpoint of one type,
converted dense and pruned (top-k; dense only where a script gives no prune locations),
against ONNX Runtime fp32 on the same arrays (in BERT's terms, or the type's own graph),
1 x 128 tokens, interleaved in one process. The outputs are compared first: mean-pooled
embeddings, cosine >= 0.99999; or, with head "classifier", the logits of the
checkpoint's own head, max |difference| <= LOGITS_TOL."""

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
from toprt_ctypes import OUTPUT_EMBEDDING, OUTPUT_LOGITS, Batch, Lib

LOGITS_TOL = 1e-4  # max |toprt - ORT| of a logit (f32 against f32: ~1e-6 expected)


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


def main(name: str, title: str, doc: str, make_checkpoint, bert_terms, prune_layers, build_graph=build_onnx,
         head="embedding"):
    """The command line of one encoder type's script."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    compare(name, title, make_checkpoint, bert_terms, prune_layers, args.rounds, args.threads, build_graph, head)


def compare(name: str, title: str, make_checkpoint, bert_terms, prune_layers, rounds: int, threads: int,
            build_graph=build_onnx, head="embedding"):
    """`make_checkpoint(folder)` writes the checkpoint; `bert_terms(folder)` gives its
    arrays under BERT's names and the config build_onnx reads (or, with `build_graph`,
    whatever that builder reads: `build_graph(arrays, config, head, path)`).
    `prune_layers` (e.g. "3,5,7,9", or None: no pruned model) are the top-k rule's
    locations. `head`: "embedding" (converted with mean pooling; the mean-pooled
    embeddings are compared and timed) or "classifier" (the checkpoint's own head; its
    logits are compared and timed)."""
    import os

    os.chdir(REPO)
    out = OUT / name
    ckpt = out / "ckpt"
    make_checkpoint(ckpt)
    bins = Path("target/release")
    dense_m, pruned_m = out / "dense.toprt", out / "pruned.toprt"
    pooling = ["--pooling", "mean"] if head == "embedding" else []
    todo = [(dense_m, [])]
    if prune_layers:
        todo.append((pruned_m, ["--keep-ratio", "0.7", "--prune-layers", prune_layers]))
    for m, extra in todo:
        if not m.is_file():
            run([bins / "toprt-convert", ckpt, "-o", m, "--no-tokenizer", *pooling, *extra])
    w, cfg = bert_terms(ckpt)
    plain, fused = out / f"{name}-plain.onnx", out / f"{name}-fused.onnx"
    if not plain.is_file():
        build_graph(w, cfg, head, plain)
    if not fused.is_file():
        log(f"fusion: {ort_fused(plain, fused, cfg)}")
    lib = Lib(bins / "libtoprt.so")
    tsess = lib.model(dense_m).session(threads)
    psess = lib.model(pruned_m).session(threads) if prune_layers else None
    rows = random_ids(1, 128)
    batch = Batch(rows)
    osess = {n: ort_session(path, threads) for n, path in (("plain", plain), ("fused", fused)) if path.is_file()}
    # Each graph's own inputs (a type without token types has no token_type_ids).
    all_feeds = feeds_for(rows)
    feeds = {n: {i.name: all_feeds[i.name] for i in s.get_inputs()} for n, s in osess.items()}

    if head == "embedding":
        check_embeddings(tsess, batch, osess, feeds)
        out_name, out_flag = "embedding", OUTPUT_EMBEDDING
    else:
        check_logits(tsess, batch, osess, feeds)
        out_name, out_flag = "logits", OUTPUT_LOGITS

    cands = [("toprt dense", lambda: tsess.time_run(batch, False, out_flag))]
    if psess is not None:
        cands.append(("toprt pruned", lambda: psess.time_run(batch, True, out_flag)))
    cands += [(f"ORT fp32 {n}", lambda s=s, f=feeds[n]: s.run([out_name], f)) for n, s in osess.items()]
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
    if psess is not None:
        log(f"  toprt pruned / ORT fp32: {paired_ratio(times['toprt pruned'], times[ort_name]):.3f}")
        log(f"  pruned speedup over dense: {paired_ratio(times['toprt dense'], times['toprt pruned']):.2f}x")
        log(f"  engine-bench on the pruned file: ./target/release/engine-bench --model {pruned_m} --threads {threads}")


def check_embeddings(tsess, batch, osess, feeds):
    """Mean-pooled embeddings (toprt's unnormalised, ORT's normalised: the cosine does not
    care), cosine >= 0.99999 against every graph."""
    t_emb = np.asarray(tsess.floats(batch, False, "embedding")[0], np.float64)
    for n, s in osess.items():
        o = s.run(["embedding"], feeds[n])[0][0].astype(np.float64)
        cos = float(t_emb @ o / np.linalg.norm(t_emb) / np.linalg.norm(o))
        log(f"toprt dense vs ORT {n}: embedding cosine {cos:.7f}")
        assert cos >= 0.99999, f"ORT {n} and toprt disagree: cosine {cos}"


def check_logits(tsess, batch, osess, feeds):
    """The head's logits, max |toprt - ORT| <= LOGITS_TOL against every graph."""
    t = np.asarray(tsess.floats(batch, False, "logits"), np.float64)
    for n, s in osess.items():
        o = s.run(["logits"], feeds[n])[0].astype(np.float64)
        diff = float(np.abs(t - o).max())
        log(f"toprt dense vs ORT {n}: logits {np.round(t[0], 5).tolist()} vs {np.round(o[0], 5).tolist()}, "
            f"max |difference| {diff:.2e}")
        assert diff <= LOGITS_TOL, f"ORT {n} and toprt disagree: max |logit difference| {diff}"
