"""How times are taken and summarised: every configuration of a section once per round,
in a rotating order, and ratios as medians of per-round ratios."""

import statistics
import time

from common import log


def summary(ts, scale=1e3):
    """Median / p90 / min of times given in seconds, in ms."""
    s = sorted(t * scale for t in ts)
    return {"median_ms": statistics.median(s), "p90_ms": s[round((len(s) - 1) * 0.9)], "min_ms": s[0],
            "runs": len(s)}


def interleave(cands, rounds, warmup=1, pause=0.0):
    """Times every candidate once per round, `rounds` times, after `warmup` untimed rounds.
    The order rotates from round to round, so no candidate always follows the same one, and
    every candidate sees the same drifts of a shared machine. `pause` seconds of sleep
    between calls let spinning worker threads (ORT's default) go idle before the next
    runtime starts. Returns {key: [seconds per call, by round]}."""
    out = {k: [] for k, _ in cands}
    for r in range(warmup + rounds):
        for i in range(len(cands)):
            k, fn = cands[(i + r) % len(cands)]
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if r >= warmup:
                out[k].append(dt)
        log(f"    round {r + 1}/{warmup + rounds}{' (warm-up)' if r < warmup else ''} done")
    return out


def paired_ratio(num, den):
    """Median over rounds of num[i] / den[i] (both timed in the same round)."""
    return statistics.median(a / b for a, b in zip(num, den))
