#!/usr/bin/env bash
# toprt vs ONNX Runtime on the same weights, in one run (see bench/compare/compare.py).
#
#   bash bench/compare/run.sh [compare.py options, e.g. --threads 1,2 --texts 32]
#
# Builds the release binaries, fetches all-MiniLM-L6-v2 if missing, sets up a venv under
# target/compare/venv (pinned pip packages from bench/compare/requirements.txt; no
# torch), then measures everything and writes target/compare/results.json and
# target/compare/report.md. Real texts come from ../shared/data/sst2/dev.tsv (next to the
# repository); without it the SST-2 rows are skipped, and the run says so.
#
# Environment: CARGO_TARGET_DIR (default: target), PYTHON (default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

source bench/compare/setup.sh

exec "${VENV}/bin/python" bench/compare/compare.py --bin-dir "${TARGET}/release" "$@"
