#!/usr/bin/env bash
# Builds the Python package (python/, PyO3 + maturin) into a virtual environment under
# target/pyenv, with what its tests need (python/requirements-test.txt: maturin, numpy,
# pytest, Ray Data), all from PyPI. Idempotent: the venv and the packages are reused,
# the package itself is rebuilt (cargo rebuilds only what changed).
#
# Afterwards: target/pyenv/bin/python -m pytest python/tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=target/pyenv
REQS=python/requirements-test.txt

if [[ ! -x "${VENV}/bin/python" ]]; then
    echo "== python: creating ${VENV}"
    "${PYTHON}" -m venv "${VENV}"
fi
# Reinstall the pinned requirements only when the list changed.
stamp="${VENV}/.requirements"
if ! cmp -s "${REQS}" "${stamp}"; then
    echo "== python: installing ${REQS}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQS}"
    cp "${REQS}" "${stamp}"
fi
echo "== python: building and installing ./python (maturin, release)"
# maturin from the venv builds the extension with the workspace's cargo and target/.
PATH="$(pwd)/${VENV}/bin:${PATH}" "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps ./python
