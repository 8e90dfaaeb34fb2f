"""Shared fixtures: model files converted once per test session with toprt.convert,
real text from ../shared/data, and the `toprt` binary the parity tests compare against."""

import csv
import pathlib

import pytest

import toprt

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MINILM = ROOT / "target" / "test-models" / "all-MiniLM-L6-v2"
SHARED_DATA = ROOT.parent / "shared" / "data"
TOPRT_BIN = ROOT / "target" / "release" / "toprt"


def sst2(name, limit):
    """The first `limit` sentences of SST-2 `name` (train or dev)."""
    path = SHARED_DATA / "sst2" / f"{name}.tsv"
    if not path.is_file():
        pytest.fail(f"{path} is missing: the tests read real text from ../shared/data")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"].strip() for r in rows[:limit]]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Paths of the test models: a tiny 3-class classifier (dense, and pruned with ToP
    rank bins), a tiny ELECTRA discriminator (pruned, top-k), and all-MiniLM-L6-v2
    embeddings (dense, and with top-k keep-rules)."""
    out = tmp_path_factory.mktemp("models")
    if not (MINILM / "model.safetensors").is_file():
        pytest.fail(f"{MINILM} is missing: run scripts/fetch-test-models.sh")
    made = {
        "classifier": toprt.convert(FIXTURES / "tiny-bert-st", out / "classifier.toprt")["out"],
        "pruned_classifier": toprt.convert(
            FIXTURES / "top-best", out / "pruned-classifier.toprt", tokenizer=FIXTURES / "tiny-bert-st"
        )["out"],
        "no_tokenizer": toprt.convert(FIXTURES / "tiny-bert-st", out / "ids-only.toprt", no_tokenizer=True)["out"],
        "minilm": toprt.convert(MINILM, out / "minilm.toprt")["out"],
        # ELECTRA's discriminator (a logit per token), pruned with top-k after layer 0.
        "discriminator": toprt.convert(
            FIXTURES / "tiny-electra-disc-st", out / "discriminator.toprt", keep_ratio=0.5, prune_layers=[1]
        )["out"],
        "minilm_pruned": toprt.convert(
            MINILM, out / "minilm-pruned.toprt", keep_ratio=0.7, prune_layers=[2, 3, 4, 5]
        )["out"],
    }
    return made


@pytest.fixture(scope="session")
def dev_texts():
    return sst2("dev", 200)


def require_binary():
    if not TOPRT_BIN.is_file():
        pytest.fail(f"{TOPRT_BIN} is missing: build it with `cargo build --release --workspace --bins`")
    return str(TOPRT_BIN)

