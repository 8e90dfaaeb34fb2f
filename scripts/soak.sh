#!/usr/bin/env bash
# Load and soak test, full version (the normal suite runs a short one, `soak_short`):
#   * 8 threads x 1000 requests of random lengths sharing one model, one session per
#     thread, every output compared bit for bit with a single-threaded run;
#   * 10 000 requests on one session: resident memory before and after (< 1% growth)
#     and, with glibc, the heap bytes in use (which show even small leaks);
#   * one second idle with every session alive: the process's CPU time (~0).
# It runs on all-MiniLM-L6-v2 (fetched when missing). On a 2-core machine it takes
# 15-30 minutes, depending on other load; TOPRT_SOAK_MAX_LEN=64 roughly halves that.
# Sizes can be changed through the environment:
#   TOPRT_SOAK_THREADS (8), TOPRT_SOAK_REQUESTS per thread (1000),
#   TOPRT_SOAK_RSS_REQUESTS (10000), TOPRT_SOAK_MAX_LEN in tokens (128),
#   TOPRT_SOAK_DISTINCT requests drawn from (256).
# TOPRT_ISA forces a kernel tier, as for the other tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/fetch-test-models.sh
cargo test --release -p toprt-tests --test soak -- --ignored --exact soak_full --nocapture
