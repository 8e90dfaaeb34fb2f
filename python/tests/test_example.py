"""examples/python/ray_batch.py scores a JSONL and a Parquet file on a local Ray
instance and writes every row, with the model's outputs, to Parquet."""

import json
import subprocess
import sys

import numpy as np
import pytest

import toprt
from conftest import ROOT, sst2

pq = pytest.importorskip("pyarrow.parquet", reason="Ray Data brings pyarrow (scripts/test.sh installs it)")


def read_rows(folder):
    table = pq.read_table(folder)
    rows = table.to_pylist()
    return {r["id"]: r for r in rows}


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_ray_batch_example(models, tmp_path, kind):
    texts = sst2("dev", 120)
    records = [{"id": i, "text": t} for i, t in enumerate(texts)]
    src = tmp_path / f"in.{kind}"
    if kind == "jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(records), src)
    out = tmp_path / "out"
    args = ["--model", models["pruned_classifier"], "--input", src, "--output", out, "--actors", "2"]
    if kind == "parquet":
        args.append("--ship-bytes")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "ray_batch.py"), *map(str, args)],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"120 rows scored" in done.stderr
    rows = read_rows(out)
    assert sorted(rows) == list(range(120))
    want = toprt.Model(models["pruned_classifier"]).session(threads=1).run(texts).logits
    for i in range(120):
        assert rows[i]["text"] == texts[i]
        assert np.array_equal(np.asarray(rows[i]["logits"], dtype=np.float32), want[i]), i
