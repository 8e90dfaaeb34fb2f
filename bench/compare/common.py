"""Paths and small helpers shared by every part of bench/compare (see compare.py)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Every path below is relative to the repository root; compare.py changes into it first.
OUT = Path("target/compare")
MINILM_DIR = Path("target/test-models/all-MiniLM-L6-v2")
SST2 = Path("../shared/data/sst2/dev.tsv")
SST2_TRAIN = Path("../shared/data/sst2/train.tsv")  # calibration text (never timed or evaluated)
CLS, SEP = 101, 102


def log(msg=""):
    print(msg, flush=True)


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(cmd, **kw):
    """Runs a command (list), fails loudly with its stderr."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"error: command failed ({r.returncode}): {' '.join(map(str, cmd))}")
    return r
