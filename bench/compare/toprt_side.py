"""The toprt side: its command-line tools (toprt-convert, toprt inspect, toprt run,
engine-bench) and in-process sessions through libtoprt.so (toprt_ctypes.py)."""

import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from common import OUT, run


class Toprt:
    """toprt's command-line tools in --bin-dir: toprt-convert, toprt-calibrate, toprt and
    engine-bench."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        for b in ("toprt", "toprt-convert", "toprt-calibrate", "engine-bench"):
            if not (bin_dir / b).is_file():
                raise SystemExit(f"error: {bin_dir / b} missing (run.sh builds it)")

    def convert(self, src, dst, *extra):
        """Converts unless dst is newer than the checkpoint, the converter and the options."""
        dst, stamp = Path(dst), Path(str(dst) + ".args")
        args = " ".join(map(str, extra))
        newest = max((Path(src) / "model.safetensors").stat().st_mtime, (self.bin / "toprt-convert").stat().st_mtime)
        if dst.is_file() and stamp.is_file() and stamp.read_text() == args and dst.stat().st_mtime > newest:
            return "up to date"
        r = run([self.bin / "toprt-convert", src, "-o", dst, "--force", *extra])
        stamp.write_text(args)
        return r.stderr

    def calibrate(self, src, dst, data, *extra):
        """toprt-calibrate --dtype int8 of the toprt file `src` on `data`, unless dst is
        newer than src, the tool, the data and the options."""
        dst, stamp = Path(dst), Path(str(dst) + ".args")
        args = " ".join(map(str, (data, *extra)))
        newest = max(Path(p).stat().st_mtime for p in (src, data, self.bin / "toprt-calibrate"))
        if dst.is_file() and stamp.is_file() and stamp.read_text() == args and dst.stat().st_mtime > newest:
            return "up to date"
        r = run([self.bin / "toprt-calibrate", src, "--data", data, "--dtype", "int8", "-o", dst, "--force", *extra])
        stamp.write_text(args)
        return r.stderr

    def inspect(self, model, lengths, pad_to):
        r = run([self.bin / "toprt", "inspect", model, "--lengths", ",".join(map(str, lengths)),
                 "--pad-to", str(pad_to)])
        return r.stdout

    def gemm_kernel(self, model):
        """The GEMM the model's encoder runs on in this machine (engine-bench's report)."""
        js = OUT / "logs" / "engine-bench-kernel.json"
        run([self.bin / "engine-bench", "--model", model, "--seq-len", 8, "--iters", 1, "--warmup", 0, "--no-prune",
             "--json", js])
        return json.loads(js.read_text())["gemm_kernel"]

    def run_jsonl(self, model, jsonl, threads, *extra, output=None):
        """Wall time (s) of one `toprt run` process, batch size 1."""
        cmd = [self.bin / "toprt", "run", "--model", model, "--input", jsonl, "--output", output or "-",
               "--threads", threads, "--batch-size", "1", *extra]
        t0 = time.perf_counter()
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.DEVNULL if output is None else None,
                           stderr=subprocess.PIPE, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"error: toprt run failed: {r.stderr.strip()}")
        return dt


def sst2_macs(tp, pruned_m, lens):
    """MACs of the dense model, the pruned model and the dense model on inputs padded to 64,
    summed over sentences of lengths `lens` (from `toprt inspect`)."""
    mt = parse_mac_table(tp.inspect(pruned_m, sorted(set(lens)), 64))
    dense_g = sum(mt[k][0] for k in lens)
    pruned_g = sum(mt[k][1] for k in lens)
    padded_g = sum(mt[k][1] * mt[k][3] for k in lens)
    alive = [sum(mt[k][4]) / (k * len(mt[k][4])) for k in lens]
    return {"dense_gmac": dense_g, "pruned_gmac": pruned_g, "padded64_gmac": padded_g,
            "reduction_vs_unpadded": dense_g / pruned_g, "reduction_vs_padded64": padded_g / pruned_g,
            "token_sparsity": 1 - float(np.mean(alive))}


def write_ids_jsonl(path: Path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"input_ids": list(map(int, r)), "token_type_ids": [0] * len(r)}) + "\n")


def parse_mac_table(text):
    """`toprt inspect --lengths` rows -> {n: (dense GMAC, pruned GMAC, red. unpadded, red. padded, tokens)}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)x\s+([\d,]+)\s*$", line)
        if m:
            out[int(m.group(1))] = (float(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5)),
                                    [int(t) for t in m.group(6).split(",")])
    return out


class Sessions:
    """tsess(model, threads, max_tokens=0): one libtoprt.so session per model, thread count
    and token budget, made on first use. `models`: {name: toprt_ctypes model}."""

    def __init__(self, models):
        self.models, self.cache = models, {}

    def __call__(self, name, threads_, max_tokens=0):
        key = (name, threads_, max_tokens)
        if key not in self.cache:
            self.cache[key] = self.models[name].session(threads_, max_tokens)
        return self.cache[key]
