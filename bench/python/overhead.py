"""Python overhead: the toprt Python package against engine-bench on the same batches.

    target/pyenv/bin/python bench/python/overhead.py [--model M.toprt] [--data FILE]
        [--batch 32] [--threads 1] [--rounds 7] [--no-prune]

Each round runs, in this one process and interleaved (so the machine's drift hits both):
  1. engine-bench (its library function, the same code as the binary) on --data in
     batches of --batch, one iteration: its median_ms is the engine's time for all
     batches, tokenization excluded;
  2. Session.run over the same batches given as the token ids engine-bench ran
     (int32 arrays, read in place): the engine plus the binding (argument checks,
     results into numpy);
  3. Session.run over the same batches given as text: 2. plus tokenization, which
     engine-bench does not time.
It prints the median over rounds of each per-round ratio to engine-bench.
Default model: all-MiniLM-L6-v2 (target/test-models, from scripts/fetch-test-models.sh),
converted once under target/bench-python/.
"""

import argparse
import csv
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

import toprt
from toprt._toprt import _command

ROOT = pathlib.Path(__file__).resolve().parents[2]


def default_model():
    out = ROOT / "target" / "bench-python" / "minilm.toprt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        toprt.convert(ROOT / "target" / "test-models" / "all-MiniLM-L6-v2", out)
    return str(out)


def read_texts(path):
    with open(path, newline="", encoding="utf-8") as f:
        if path.endswith(".tsv"):
            return [r["text"].strip() for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
        return [json.loads(l)["text"] for l in f if l.strip()]


def engine_bench_ms(model, data, batch, threads, prune):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "bench.json")
        args = ["--model", model, "--input", data, "--batch", str(batch), "--threads", str(threads)]
        args += ["--iters", "1", "--warmup", "1", "--json", out]
        if not prune:
            args.append("--no-prune")
        saved = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)  # engine-bench's report is not needed, only its JSON
        try:
            status = _command("bench", args)
        finally:
            os.dup2(saved, 1)
            os.close(null)
            os.close(saved)
        if status != 0:
            sys.exit(f"engine-bench failed with status {status}")
        runs = {r["name"]: r for r in json.load(open(out))["runs"]}
        # A model without keep-rules has only the dense run.
        return runs["pruned" if prune and "pruned" in runs else "dense"]["median_ms"]


def timed(session, batches):
    t0 = time.perf_counter()
    for b in batches:
        session.run(b)
    return (time.perf_counter() - t0) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a .toprt file (default: all-MiniLM-L6-v2)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--no-prune", action="store_true")
    a = p.parse_args()
    model = a.model or default_model()
    prune = not a.no_prune
    texts = read_texts(a.data)
    session = toprt.Model(model).session(threads=a.threads, prune=prune)
    text_batches = [texts[i : i + a.batch] for i in range(0, len(texts), a.batch)]
    # The token ids engine-bench runs: the model's tokenizer at its maximum length.
    id_batches = [session.run(b).input_ids for b in text_batches]
    for b in id_batches:
        assert all(x.dtype == np.int32 and x.flags["C_CONTIGUOUS"] for x in b)
    timed(session, id_batches)  # warm-up
    rows = []
    for r in range(a.rounds):
        eb = engine_bench_ms(model, a.data, a.batch, a.threads, prune)
        # The two Python forms swap places every round, so neither always runs first.
        if r % 2 == 0:
            ids, txt = timed(session, id_batches), timed(session, text_batches)
        else:
            txt, ids = timed(session, text_batches), timed(session, id_batches)
        rows.append((eb, ids, txt))
        print(f"round {r + 1}: engine-bench {eb:.1f} ms, Python ids {ids:.1f} ms ({ids / eb:.3f}x), "
              f"Python text {txt:.1f} ms ({txt / eb:.3f}x)", file=sys.stderr)
    med = lambda xs: statistics.median(xs)
    ratio_ids = med([i / e for e, i, _ in rows])
    ratio_txt = med([t / e for e, _, t in rows])
    print(f"model {os.path.basename(model)}, {len(texts)} texts from {os.path.basename(a.data)}, "
          f"batch {a.batch}, {a.threads} thread(s), {'pruned' if prune else 'dense'}, {a.rounds} rounds")
    print(f"engine-bench median    {med([e for e, _, _ in rows]):8.1f} ms per pass over the data")
    print(f"Python, token ids      {med([i for _, i, _ in rows]):8.1f} ms   overhead {100 * (ratio_ids - 1):+.1f}% "
          f"(median of per-round ratios)")
    print(f"Python, text           {med([t for _, _, t in rows]):8.1f} ms   {100 * (ratio_txt - 1):+.1f}% "
          f"(tokenization included; engine-bench excludes it)")


if __name__ == "__main__":
    main()
