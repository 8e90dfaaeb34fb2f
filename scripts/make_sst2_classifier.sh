#!/usr/bin/env bash
# Makes the fine-tuned SST-2 classifier the quality benchmarks use
# (target/test-models/minilm-sst2/): sets up target/train-venv from
# scripts/requirements-train.txt, fetches all-MiniLM-L6-v2, then runs
# scripts/make_sst2_classifier.py (about 10 minutes on 2 cores). Skips the work when the
# model is already there (delete the folder to redo it). Extra arguments go to the
# Python script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
OUT="target/test-models/minilm-sst2"
if [[ -f "${OUT}/model.safetensors" && -f "${OUT}/training.json" && $# -eq 0 ]]; then
    echo "minilm-sst2: already present at ${OUT} ($(grep -o '"dev_accuracy": [0-9.]*' "${OUT}/training.json"))"
    exit 0
fi
bash scripts/fetch-test-models.sh
VENV="target/train-venv"
REQ="scripts/requirements-train.txt"
if [[ ! -x "${VENV}/bin/python" || ! -f "${VENV}/.requirements" ]] || ! cmp -s "${REQ}" "${VENV}/.requirements"; then
    echo "== setting up ${VENV} (torch, transformers; a few GB)"
    "${PYTHON}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQ}"
    cp "${REQ}" "${VENV}/.requirements"
fi
exec "${VENV}/bin/python" scripts/make_sst2_classifier.py "$@"
