"""Ray scale-out on one machine: 2 actors x 1 thread (toprt.ray.Predictor on Ray Data)
against 1 process x 2 threads (one Session), on the same texts.

    target/pyenv/bin/python bench/python/ray_scaling.py [--model M.toprt] [--data FILE]
        [--limit 4000] [--batch 64] [--rounds 3]

Rounds alternate the two set-ups; each reports rows per second over the whole data
(Ray: from map_batches to the last row materialized, actors already warm from a first
untimed job; Ray's per-job scheduling is part of what it costs). Prints the median
throughput of each and the median per-round ratio.
"""

import argparse
import statistics
import sys
import time

import ray

import toprt
import toprt.ray
from overhead import ROOT, default_model, read_texts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a .toprt file (default: all-MiniLM-L6-v2)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"))
    p.add_argument("--limit", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    model = a.model or default_model()
    texts = read_texts(a.data)[: a.limit]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.from_items([{"text": t} for t in texts]).materialize()

    def ray_job():
        out = ds.map_batches(
            toprt.ray.Predictor,
            fn_constructor_kwargs={"model": model, "threads": 1},
            concurrency=2,
            num_cpus=1,
            batch_size=a.batch,
            batch_format="numpy",
        )
        t0 = time.perf_counter()
        n = out.materialize().count()
        assert n == len(texts)
        return n / (time.perf_counter() - t0)

    session = toprt.Model(model).session(threads=2)

    def local():
        t0 = time.perf_counter()
        for i in range(0, len(texts), a.batch):
            session.run(texts[i : i + a.batch])
        return len(texts) / (time.perf_counter() - t0)

    ray_job()  # warm-up: worker processes, imports
    local()
    rows = []
    for r in range(a.rounds):
        rr, ll = ray_job(), local()
        rows.append((rr, ll))
        print(f"round {r + 1}: Ray 2x1 {rr:.1f} rows/s, local 1x2 {ll:.1f} rows/s ({rr / ll:.2f}x)", file=sys.stderr)
    med = statistics.median
    print(f"{len(texts)} texts, batch {a.batch}, model {model}")
    print(f"Ray Data, 2 actors x 1 thread : {med([r for r, _ in rows]):7.1f} rows/s")
    print(f"1 process x 2 threads         : {med([l for _, l in rows]):7.1f} rows/s")
    print(f"ratio Ray / local             : {med([r / l for r, l in rows]):7.2f} (median of per-round ratios)")
    ray.shutdown()


if __name__ == "__main__":
    main()
