"""`python -m toprt COMMAND` runs the commands in-process with the binaries' output and
exit status; toprt.calibrate raises CommandError with the command's message."""

import json
import subprocess
import sys

import pytest

import toprt
from conftest import FIXTURES, require_binary, sst2


def py_toprt(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "toprt", *map(str, args)], input=stdin, capture_output=True)


def test_help_lists_every_command():
    done = py_toprt("--help")
    assert done.returncode == 0
    out = done.stdout.decode()
    for name in ["convert", "run", "inspect", "calibrate", "bench"]:
        assert f"\n  {name} " in out, name
    assert py_toprt().returncode == 2
    bad = py_toprt("bogus")
    assert bad.returncode == 2 and "unknown command 'bogus'" in bad.stderr.decode()
    for name, option in [
        ("convert", "--keep-ratio"),
        ("run", "--keep-scale"),
        ("inspect", "--cpu"),
        ("calibrate", "--target-mac-reduction"),
        ("bench", "--compare"),
    ]:
        done = py_toprt(name, "--help")
        assert done.returncode == 0 and option in done.stdout.decode(), name


def test_inspect_and_run_equal_the_binary(models, dev_texts):
    binary = require_binary()
    path = models["pruned_classifier"]
    want = subprocess.run([binary, "inspect", path], capture_output=True, check=True)
    got = py_toprt("inspect", path)
    assert got.returncode == 0 and got.stdout == want.stdout
    lines = "".join(json.dumps({"text": t}) + "\n" for t in dev_texts[:30]).encode()
    args = ["run", "--model", path, "--input", "-", "--kept", "--threads", "1"]
    want = subprocess.run([binary, *args], input=lines, capture_output=True, check=True)
    got = py_toprt(*args, stdin=lines)
    assert got.returncode == 0 and got.stdout == want.stdout and len(got.stdout.splitlines()) == 30
    # Errors: same status and message.
    want = subprocess.run([binary, "inspect", "/nonexistent.toprt"], capture_output=True)
    got = py_toprt("inspect", "/nonexistent.toprt")
    assert want.returncode == got.returncode == 1 and got.stderr == want.stderr


def test_convert_command_equals_function(tmp_path):
    a, b = tmp_path / "a.toprt", tmp_path / "b.toprt"
    done = py_toprt("convert", FIXTURES / "tiny-bert-st", "-o", a, "--keep-ratio", "0.5")
    assert done.returncode == 0, done.stderr
    toprt.convert(FIXTURES / "tiny-bert-st", b, keep_ratio=0.5)
    assert a.read_bytes() == b.read_bytes()
    again = py_toprt("convert", FIXTURES / "tiny-bert-st", "-o", a)
    assert again.returncode == 1 and b"exists" in again.stderr


def test_calibrate_errors_carry_the_message(models, tmp_path):
    few = tmp_path / "few.tsv"
    few.write_text("text\tlabel\n" + "".join(f"{t}\t1\n" for t in sst2("train", 5)))
    out = tmp_path / "out.toprt"
    with pytest.raises(toprt.CommandError, match="calibration needs at least"):
        toprt.calibrate(models["minilm"], few, out, target_mac_reduction=1.5)
    assert not out.exists()


def test_bench_runs(models):
    done = py_toprt("bench", "--model", models["pruned_classifier"], "--iters", "2", "--warmup", "0", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert b"speedup" in done.stdout
