"""Score a JSONL or Parquet file of texts with a toprt model on a Ray cluster.

    python examples/python/ray_batch.py --model model.toprt --input texts.jsonl \
        --output scored/ [--actors 4] [--threads 1] [--batch-size 64] [--ship-bytes] \
        [--address auto]

Each input row needs a "text" column (and "text_pair" for pairs); every other column is
kept. The output folder gets Parquet files with the added "logits" and/or "embedding"
columns. Without --address a local Ray instance is started; with --address auto (or
ray://host:10001) the job runs on that cluster, where --model must be a path every node
can read, or --ship-bytes sends the file through Ray's object store instead.
"""

import argparse
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the .toprt file")
    p.add_argument("--input", required=True, help="a .jsonl/.json or .parquet file (or folder of them)")
    p.add_argument("--output", required=True, help="output folder for the Parquet results")
    p.add_argument("--actors", type=int, default=2, help="model copies (one per actor; default 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per actor (default 1)")
    p.add_argument("--batch-size", type=int, default=64, help="rows per batch (default 64)")
    p.add_argument("--ship-bytes", action="store_true", help="send the model through the object store")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--no-prune", action="store_true", help="ignore the model's keep-rules")
    p.add_argument("--keep-scale", type=float, default=1.0, help="pruning dial (>1 keeps more tokens)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ray

    import toprt.ray

    if not os.path.exists(args.model):
        sys.exit(f"error: {args.model}: no such file")
    if args.address is None:
        # A local instance: room for the actors plus the read and write tasks (Ray Data
        # would otherwise wait for a CPU the actors hold).
        ray.init(num_cpus=max(os.cpu_count() or 1, args.actors * args.threads + 1))
    else:
        ray.init(address=args.address)
    if args.input.endswith(".parquet") or os.path.isdir(args.input):
        ds = ray.data.read_parquet(args.input)
    else:
        ds = ray.data.read_json(args.input, lines=True)
    if args.ship_bytes:
        with open(args.model, "rb") as f:
            model = ray.put(f.read())
    else:
        model = os.path.abspath(args.model)
    start = time.perf_counter()
    scored = ds.map_batches(
        toprt.ray.Predictor,
        fn_constructor_kwargs={
            "model": model,
            "threads": args.threads,
            "prune": not args.no_prune,
            "keep_scale": args.keep_scale,
        },
        concurrency=args.actors,
        num_cpus=args.threads,
        batch_size=args.batch_size,
        batch_format="numpy",
    )
    scored.write_parquet(args.output)
    rows = ray.data.read_parquet(args.output).count()
    took = time.perf_counter() - start
    print(f"{rows} rows scored in {took:.1f} s ({rows / took:.1f} rows/s) -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
