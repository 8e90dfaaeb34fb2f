#!/usr/bin/env bash
# What int8 costs in answers, on real text with a real fine-tuned model
# (see bench/compare/quality.py): toprt int8 and ONNX Runtime int8 against fp32.
#
#   bash bench/compare/quality.sh [quality.py options]
#
# Builds the release binaries, makes the SST-2 classifier if it is missing
# (scripts/make_sst2_classifier.sh: about 10 minutes on 2 cores, torch in its own venv),
# sets up the bench/compare venv, then writes target/compare/quality.json and quality.md.
# Needs ../shared/data/sst2 next to the repository.
#
# Environment: CARGO_TARGET_DIR (default: target), PYTHON (default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

source bench/compare/setup.sh

bash scripts/make_sst2_classifier.sh

exec "${VENV}/bin/python" bench/compare/quality.py --bin-dir "${TARGET}/release" "$@"
