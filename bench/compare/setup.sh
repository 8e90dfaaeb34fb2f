# Sourced by run.sh and quality.sh from the repository root: builds the release
# binaries, fetches all-MiniLM-L6-v2 if missing, and sets up target/compare/venv (pinned
# pip packages from bench/compare/requirements.txt; no torch), reinstalled when that
# file changes. Sets TARGET and VENV for the caller.
#
# Environment: CARGO_TARGET_DIR (default: target), PYTHON (default: python3).
PYTHON="${PYTHON:-python3}"
TARGET="${CARGO_TARGET_DIR:-target}"
VENV="target/compare/venv"
REQ="bench/compare/requirements.txt"

echo "== building toprt, toprt-convert, toprt-calibrate, engine-bench (release)"
cargo build --release -p toprt-convert -p toprt-calibrate -p toprt-bench -p toprt -p toprt-cli

bash scripts/fetch-test-models.sh

mkdir -p target/compare
STAMP="${VENV}/.requirements"
if [[ ! -x "${VENV}/bin/python" || ! -f "${STAMP}" ]] || ! cmp -s "${REQ}" "${STAMP}"; then
    echo "== setting up ${VENV} (pip: $(grep -v '^#' "${REQ}" | cut -d' ' -f1 | xargs))"
    "${PYTHON}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQ}"
    cp "${REQ}" "${STAMP}"
fi
