"""The measured sections: BERT-base 1 x 128 (dense, pruned, ORT fp32 / int8), MiniLM
32 x 128 throughput, SST-2 dev sentences one at a time, and SST-2 dev in batches."""

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import toprt_ctypes
from common import SST2, log, loadavg
from models import random_ids
from ort_side import feeds_for
from report import Rows
from timing import interleave, paired_ratio, summary
from toprt_side import Toprt, sst2_macs


@dataclass
class Bench:
    """What the sections share; compare.py's main builds it."""

    args: argparse.Namespace
    threads: list  # BERT-base 1 x 128 thread counts
    mthreads: list  # MiniLM thread counts
    sthreads: list  # SST-2 thread counts
    res: dict  # results.json as it is being built
    row: Rows  # adds a row to the report table
    sess: object  # ort_side.Sessions: sess(model, kind, threads)
    tsess: object  # toprt_side.Sessions: tsess(model, threads, max_tokens=0)
    chosen: dict  # (model, kind) -> the ORT graph variant used
    tp: Toprt  # toprt's command-line tools
    tok: object  # the MiniLM tokenizer, truncating at 64 tokens
    pruned_m: Path  # the pruned BERT-base model file
    macs128: tuple  # toprt inspect's row for 128 tokens
    pause: float  # seconds of sleep before each timed call


KEYS_1X128 = ("ort_fp32", "ort_int8", "ort_int8_pc", "toprt_dense", "toprt_dense_pruned_file", "toprt_pruned",
              "toprt_bf16_dense", "toprt_bf16_pruned", "toprt_int8_dense", "toprt_int8_pruned")


def bert_base_1x128(b: Bench):
    """Section 1/3: BERT-base, batch 1 x 128 tokens, every configuration and thread count."""
    args, threads, res, row, sess, tsess, chosen = b.args, b.threads, b.res, b.row, b.sess, b.tsess, b.chosen
    meas, macs128, pause = res["measurements"], b.macs128, b.pause
    f128 = feeds_for(random_ids(1, 128))
    log("\n== 1/3. BERT-base, batch 1 x 128 tokens (fixed shape): toprt f32 / bf16 / int8 dense and pruned, "
        "ORT fp32 / int8 / int8-pc, "
        f"all thread counts interleaved ({args.rounds} rounds)")
    b128 = toprt_ctypes.Batch(random_ids(1, 128))
    cands = []
    for t in threads:
        s32, s8 = sess("bert-base", "fp32", t), sess("bert-base", "int8", t)
        s8pc = sess("bert-base", "int8-pc", t)
        td, tpr = tsess("dense", t), tsess("pruned", t)
        cands += [(("ort_fp32", t), lambda s=s32: s.run(["logits"], f128)),
                  (("ort_int8", t), lambda s=s8: s.run(["logits"], f128)),
                  (("ort_int8_pc", t), lambda s=s8pc: s.run(["logits"], f128)),
                  (("toprt_int8_dense", t), lambda s=tsess("dense_int8", t): s.time_run(b128, False)),
                  (("toprt_int8_pruned", t), lambda s=tsess("pruned_int8", t): s.time_run(b128, True)),
                  (("toprt_dense", t), lambda s=td: s.time_run(b128, False)),
                  (("toprt_dense_pruned_file", t), lambda s=tpr: s.time_run(b128, False)),
                  (("toprt_pruned", t), lambda s=tpr: s.time_run(b128, True)),
                  (("toprt_bf16_dense", t), lambda s=tsess("dense_bf16", t): s.time_run(b128, False)),
                  (("toprt_bf16_pruned", t), lambda s=tsess("pruned_bf16", t): s.time_run(b128, True))]
    times = interleave(cands, args.rounds, warmup=2, pause=pause)
    meas["bert_base_1x128"] = {"rounds": args.rounds, "mac_reduction": macs128[2], "runs": []}
    for t in threads:
        e = {"threads": t, "loadavg": loadavg()}
        for k in KEYS_1X128:
            e[k] = summary(times[(k, t)])
            e[k]["paired_ratio_vs_ort_fp32"] = paired_ratio(times[(k, t)], times[("ort_fp32", t)])
            e[k]["paired_ratio_vs_ort_int8_pc"] = paired_ratio(times[(k, t)], times[("ort_int8_pc", t)])
        # The int8 targets: dense <= 0.9x and pruned <= 0.45x ORT int8-pc's time, dense >= 2.2x
        # as fast as toprt f32 dense.
        e["int8_targets"] = {
            "dense_vs_ort_int8_pc": e["toprt_int8_dense"]["paired_ratio_vs_ort_int8_pc"],
            "pruned_vs_ort_int8_pc": e["toprt_int8_pruned"]["paired_ratio_vs_ort_int8_pc"],
            "dense_speedup_over_f32_dense": paired_ratio(times[("toprt_dense", t)], times[("toprt_int8_dense", t)]),
        }
        e["toprt_pruned"]["speedup_over_dense"] = paired_ratio(times[("toprt_dense", t)], times[("toprt_pruned", t)])
        ref = e["ort_fp32"]["median_ms"]
        if t != threads[0]:
            base = threads[0]
            e["speedup_vs_threads"] = {"base": base, **{k: paired_ratio(times[(k, base)], times[(k, t)]) for k in
                                                        ("ort_fp32", "ort_int8", "ort_int8_pc", "toprt_dense",
                                                         "toprt_pruned", "toprt_bf16_dense", "toprt_bf16_pruned",
                                                         "toprt_int8_dense", "toprt_int8_pruned")}}
        meas["bert_base_1x128"]["runs"].append(e)
        log(f"\n  threads {t} (toprt isa {res['toprt_isa']}; load average {loadavg()})")
        log(f"  {'configuration':34} {'median ms':>10} {'p90 ms':>9} {'runs':>5} {'vs ORT fp32 (paired)':>21} "
            f"{'vs ORT int8-pc':>15}")
        for label, k in ((f"ORT fp32 ({chosen[('bert-base', 'fp32')]})", "ort_fp32"),
                         (f"ORT int8 ({chosen[('bert-base', 'int8')]})", "ort_int8"),
                         (f"ORT int8-pc ({chosen[('bert-base', 'int8-pc')]})", "ort_int8_pc"),
                         ("toprt dense", "toprt_dense"),
                         ("toprt dense (pruned file, pruning off)", "toprt_dense_pruned_file"),
                         ("toprt pruned", "toprt_pruned"), ("toprt bf16 dense", "toprt_bf16_dense"),
                         ("toprt bf16 pruned", "toprt_bf16_pruned"), ("toprt int8 dense", "toprt_int8_dense"),
                         ("toprt int8 pruned", "toprt_int8_pruned")):
            r = e[k]
            log(f"  {label:34} {r['median_ms']:>10.1f} {r['p90_ms']:>9.1f} {r['runs']:>5} "
                f"{r['paired_ratio_vs_ort_fp32']:>20.2f}x {r['paired_ratio_vs_ort_int8_pc']:>14.2f}x")
        it = e["int8_targets"]
        log(f"  int8 targets: dense {it['dense_vs_ort_int8_pc']:.2f}x ORT int8-pc's time (<= 0.9), pruned "
            f"{it['pruned_vs_ort_int8_pc']:.2f}x (<= 0.45), dense {it['dense_speedup_over_f32_dense']:.2f}x as fast as "
            "toprt f32 dense (>= 2.2)")
        log(f"  pruned speedup over toprt dense {e['toprt_pruned']['speedup_over_dense']:.2f}x at MAC reduction "
            f"{macs128[2]:.2f}x")
        if "speedup_vs_threads" in e:
            sp = e["speedup_vs_threads"]
            log(f"  speedup over {sp['base']} thread(s), paired: toprt dense {sp['toprt_dense']:.2f}x, "
                f"toprt pruned {sp['toprt_pruned']:.2f}x, ORT fp32 {sp['ort_fp32']:.2f}x")
        sec = "BERT-base, fixed 1 × 128"
        row(sec, f"ORT fp32 unpadded ({chosen[('bert-base', 'fp32')]})", t, ref, ref_ms=ref, ratio=1.0)
        row(sec, f"ORT int8 dynamic, per tensor ({chosen[('bert-base', 'int8')]})", t, e["ort_int8"]["median_ms"],
            ref_ms=ref, ratio=e["ort_int8"]["paired_ratio_vs_ort_fp32"])
        row(sec, f"ORT int8 dynamic, per channel ({chosen[('bert-base', 'int8-pc')]})", t,
            e["ort_int8_pc"]["median_ms"], ref_ms=ref, ratio=e["ort_int8_pc"]["paired_ratio_vs_ort_fp32"])
        note = ""
        if "speedup_vs_threads" in e:
            note = f"{e['speedup_vs_threads']['toprt_dense']:.2f}x the speed of {threads[0]} thread(s)"
        row(sec, "toprt dense", t, e["toprt_dense"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_dense"]["paired_ratio_vs_ort_fp32"], note=note)
        row(sec, "toprt pruned", t, e["toprt_pruned"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_pruned"]["paired_ratio_vs_ort_fp32"],
            note=f"MAC reduction {macs128[2]:.2f}x, speedup over toprt dense "
                 f"{e['toprt_pruned']['speedup_over_dense']:.2f}x")
        g = res["toprt_bf16_gemm"]
        row(sec, f"toprt bf16 dense ({g})", t, e["toprt_bf16_dense"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_bf16_dense"]["paired_ratio_vs_ort_fp32"], note="bf16 weights and GEMM inputs")
        row(sec, f"toprt bf16 pruned ({g})", t, e["toprt_bf16_pruned"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_bf16_pruned"]["paired_ratio_vs_ort_fp32"],
            note=f"{e['toprt_bf16_pruned']['paired_ratio_vs_ort_int8_pc']:.2f}x ORT int8-pc's time")
        gi = res["toprt_int8_gemm"]
        row(sec, f"toprt int8 dense ({gi})", t, e["toprt_int8_dense"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_int8_dense"]["paired_ratio_vs_ort_fp32"],
            note=f"{it['dense_vs_ort_int8_pc']:.2f}x ORT int8-pc's time; {it['dense_speedup_over_f32_dense']:.2f}x as "
                 "fast as toprt f32 dense")
        row(sec, f"toprt int8 pruned ({gi})", t, e["toprt_int8_pruned"]["median_ms"], ref_ms=ref,
            ratio=e["toprt_int8_pruned"]["paired_ratio_vs_ort_fp32"],
            note=f"{it['pruned_vs_ort_int8_pc']:.2f}x ORT int8-pc's time")


def minilm_32x128(b: Bench):
    """Section 2: all-MiniLM-L6-v2, batch 32 x 128 tokens, throughput."""
    args, mthreads, res, row, sess, tsess, chosen = b.args, b.mthreads, b.res, b.row, b.sess, b.tsess, b.chosen
    meas, pause = res["measurements"], b.pause
    f32x128 = feeds_for(random_ids(32, 128))
    meas["minilm_32x128"] = []
    if mthreads:
        log(f"\n== 2. all-MiniLM-L6-v2, batch 32 x 128 tokens (throughput), interleaved ({args.minilm_rounds} rounds)")
        b32 = toprt_ctypes.Batch(random_ids(32, 128))
        cands = []
        for t in mthreads:
            s32, tm = sess("minilm", "fp32", t), tsess("minilm", t, 32 * 128)
            tb, ti = tsess("minilm_bf16", t, 32 * 128), tsess("minilm_int8", t, 32 * 128)
            s8, s8pc = sess("minilm", "int8", t), sess("minilm", "int8-pc", t)
            cands += [(("ort_fp32", t), lambda s=s32: s.run(["embedding"], f32x128)),
                      (("ort_int8", t), lambda s=s8: s.run(["embedding"], f32x128)),
                      (("ort_int8_pc", t), lambda s=s8pc: s.run(["embedding"], f32x128)),
                      (("toprt", t), lambda s=tm: s.time_run(b32, False, toprt_ctypes.OUTPUT_EMBEDDING)),
                      (("toprt_bf16", t), lambda s=tb: s.time_run(b32, False, toprt_ctypes.OUTPUT_EMBEDDING)),
                      (("toprt_int8", t), lambda s=ti: s.time_run(b32, False, toprt_ctypes.OUTPUT_EMBEDDING))]
        times = interleave(cands, args.minilm_rounds, warmup=1, pause=pause)
    keys = ("ort_fp32", "ort_int8", "ort_int8_pc", "toprt", "toprt_bf16", "toprt_int8")
    for t in mthreads:
        e = {"threads": t, **{k: summary(times[(k, t)]) for k in keys}, "loadavg": loadavg()}
        for k in keys:
            e[k]["seq_per_s"] = 32e3 / e[k]["median_ms"]
        e["throughput_ratio_paired"] = paired_ratio(times[("ort_fp32", t)], times[("toprt", t)])
        e["bf16_throughput_ratio_paired"] = paired_ratio(times[("ort_fp32", t)], times[("toprt_bf16", t)])
        # The int8 target: toprt int8 >= 1.2x the throughput of ORT int8 (per channel).
        e["int8_vs_ort_int8_pc_throughput"] = paired_ratio(times[("ort_int8_pc", t)], times[("toprt_int8", t)])
        e["int8_vs_ort_int8_throughput"] = paired_ratio(times[("ort_int8", t)], times[("toprt_int8", t)])
        meas["minilm_32x128"].append(e)
        log(f"\n  threads {t} (load average {loadavg()})")
        log(f"  {'configuration':24} {'median ms/batch':>16} {'seq/s':>8} {'runs':>5}")
        log(f"  {'ORT fp32 (' + chosen[('minilm', 'fp32')] + ')':24} {e['ort_fp32']['median_ms']:>16.1f} "
            f"{e['ort_fp32']['seq_per_s']:>8.1f} {e['ort_fp32']['runs']:>5}")
        log(f"  {'toprt':24} {e['toprt']['median_ms']:>16.1f} {e['toprt']['seq_per_s']:>8.1f} {e['toprt']['runs']:>5}")
        for label, k in (("ORT int8 (" + chosen[("minilm", "int8")] + ")", "ort_int8"),
                         ("ORT int8-pc (" + chosen[("minilm", "int8-pc")] + ")", "ort_int8_pc"),
                         ("toprt bf16", "toprt_bf16"), ("toprt int8", "toprt_int8")):
            log(f"  {label:24} {e[k]['median_ms']:>16.1f} {e[k]['seq_per_s']:>8.1f} {e[k]['runs']:>5}")
        log(f"  toprt int8 throughput / ORT int8-pc, paired: {e['int8_vs_ort_int8_pc_throughput']:.3f} (target >= 1.2); "
            f"/ ORT int8 per tensor: {e['int8_vs_ort_int8_throughput']:.3f}")
        log(f"  throughput toprt / ORT, paired: {e['throughput_ratio_paired']:.3f}; toprt bf16 / ORT fp32: "
            f"{e['bf16_throughput_ratio_paired']:.3f}")
        sec = "all-MiniLM-L6-v2, fixed 32 × 128"
        ref = e["ort_fp32"]["median_ms"] / 32
        row(sec, f"ORT fp32 ({chosen[('minilm', 'fp32')]})", t, tput=e["ort_fp32"]["seq_per_s"], ref_ms=ref, ratio=1.0)
        row(sec, "toprt dense", t, tput=e["toprt"]["seq_per_s"], ref_ms=ref, ratio=1 / e["throughput_ratio_paired"],
            note=f"{e['throughput_ratio_paired']:.2f}x ORT's throughput")
        row(sec, f"toprt bf16 dense ({res['toprt_bf16_gemm']})", t, tput=e["toprt_bf16"]["seq_per_s"], ref_ms=ref,
            ratio=1 / e["bf16_throughput_ratio_paired"], note=f"{e['bf16_throughput_ratio_paired']:.2f}x ORT fp32's throughput")
        for label, k in ((f"ORT int8 dynamic, per tensor ({chosen[('minilm', 'int8')]})", "ort_int8"),
                         (f"ORT int8 dynamic, per channel ({chosen[('minilm', 'int8-pc')]})", "ort_int8_pc")):
            row(sec, label, t, tput=e[k]["seq_per_s"], ref_ms=ref,
                ratio=1 / paired_ratio(times[("ort_fp32", t)], times[(k, t)]))
        row(sec, f"toprt int8 dense ({res['toprt_minilm_int8_gemm']})", t,
            tput=e["toprt_int8"]["seq_per_s"], ref_ms=ref,
            ratio=1 / paired_ratio(times[("ort_fp32", t)], times[("toprt_int8", t)]),
            note=f"{e['int8_vs_ort_int8_pc_throughput']:.2f}x ORT int8-pc's throughput; {res['method']['minilm_int8']}")


def sst2(b: Bench):
    """Section 3b (and 3c): SST-2 dev sentences, one at a time and in batches."""
    args, sthreads, res, row, sess, tsess, chosen = b.args, b.sthreads, b.res, b.row, b.sess, b.tsess, b.chosen
    meas, tp, tok, pruned_m, pause = res["measurements"], b.tp, b.tok, b.pruned_m, b.pause
    meas["sst2"] = None
    if not sthreads:
        res["method"]["sst2"] = "skipped (--sst2-threads empty)"
    elif not SST2.is_file():
        log(f"\n== 3b. SST-2 real texts: SKIPPED — {SST2} is absent (the shared data folder next to the "
            "repository; see its README). Only the fixed-shape pruning rows are reported.")
        res["method"]["sst2"] = f"absent: {SST2}"
    else:
        lines = SST2.read_text().splitlines()[1:]
        texts = [ln.split("\t")[0].strip() for ln in lines if ln.strip()]
        step = max(1, len(texts) // args.texts)
        sample = texts[::step][:args.texts]
        rows_ids = [tok.encode(s).ids for s in sample]  # truncated to 64 (ToP's SST-2 max length)
        lens = [len(r) for r in rows_ids]
        n = len(rows_ids)
        log(f"\n== 3b. SST-2 dev, {n} sentences (every {step}th of {len(texts)}), {np.mean(lens):.1f} tokens "
            f"average (min {min(lens)}, max {max(lens)}, special tokens included, truncated at 64), batch 1, "
            f"interleaved ({args.sst2_rounds} rounds of one pass each)")
        mac = sst2_macs(tp, pruned_m, lens)
        log(f"  pruned schedule on these sentences: token sparsity {mac['token_sparsity']:.1%}, MAC reduction "
            f"{mac['reduction_vs_unpadded']:.2f}x vs unpadded, {mac['reduction_vs_padded64']:.2f}x vs padded to 64")
        feeds_un = [feeds_for([r]) for r in rows_ids]
        feeds_pad = [feeds_for([r], pad_to=64) for r in rows_ids]
        singles = [toprt_ctypes.Batch([r]) for r in rows_ids]
        sst = {"sentences": n, "tokens_mean": float(np.mean(lens)), "tokens_min": min(lens),
               "tokens_max": max(lens), "macs": mac, "rounds": args.sst2_rounds, "runs": []}
        cands = []
        for t in sthreads:
            s32, s8 = sess("bert-base", "fp32", t), sess("bert-base", "int8", t)
            td, tpr = tsess("dense", t), tsess("pruned", t)
            cands += [(("ort_fp32", t), lambda s=s32: [s.run(["logits"], f) for f in feeds_un]),
                      (("ort_pad64", t), lambda s=s32: [s.run(["logits"], f) for f in feeds_pad]),
                      (("ort_int8", t), lambda s=s8: [s.run(["logits"], f) for f in feeds_un]),
                      (("ort_int8_pc", t),
                       lambda s=sess("bert-base", "int8-pc", t): [s.run(["logits"], f) for f in feeds_un]),
                      (("toprt_dense", t), lambda s=td: [s.time_run(b, False) for b in singles]),
                      (("toprt_pruned", t), lambda s=tpr: [s.time_run(b, True) for b in singles]),
                      (("toprt_bf16_pruned", t),
                       lambda s=tsess("pruned_bf16", t): [s.time_run(b, True) for b in singles]),
                      (("toprt_int8_pruned", t),
                       lambda s=tsess("pruned_int8", t): [s.time_run(b, True) for b in singles])]
        times = interleave(cands, args.sst2_rounds, warmup=1, pause=pause)
        for t in sthreads:
            per = {k: [x * 1e3 / n for x in times[(k, t)]] for k in
                   ("ort_fp32", "ort_pad64", "ort_int8", "ort_int8_pc", "toprt_dense", "toprt_pruned",
                    "toprt_bf16_pruned", "toprt_int8_pruned")}
            e = {"threads": t, "ms_per_sentence": {k: statistics.median(v) for k, v in per.items()},
                 "paired_ratio_vs_ort_fp32": {k: paired_ratio(times[(k, t)], times[("ort_fp32", t)]) for k in per},
                 "pruned_vs_ort_pad64_speed": paired_ratio(times[("ort_pad64", t)], times[("toprt_pruned", t)]),
                 "bf16_pruned_vs_ort_pad64_speed": paired_ratio(times[("ort_pad64", t)],
                                                                times[("toprt_bf16_pruned", t)]),
                 "loadavg": loadavg()}
            sst["runs"].append(e)
            ms_ = e["ms_per_sentence"]
            ref = ms_["ort_fp32"]
            log(f"\n  threads {t} (median over passes of the mean ms per sentence; load average {loadavg()})")
            log(f"  {'configuration':34} {'ms/sentence':>12} {'vs ORT fp32 (paired)':>21}")
            for label, k in (("ORT fp32 unpadded", "ort_fp32"), ("ORT fp32 padded to 64", "ort_pad64"),
                             ("ORT int8 unpadded", "ort_int8"), ("ORT int8-pc unpadded", "ort_int8_pc"),
                             ("toprt dense", "toprt_dense"), ("toprt pruned", "toprt_pruned"),
                             ("toprt bf16 pruned", "toprt_bf16_pruned"), ("toprt int8 pruned", "toprt_int8_pruned")):
                log(f"  {label:34} {ms_[k]:>12.2f} {e['paired_ratio_vs_ort_fp32'][k]:>20.2f}x")
            log(f"  toprt pruned is {e['pruned_vs_ort_pad64_speed']:.2f}x as fast as ORT fp32 padded to 64 (ToP's "
                f"baseline convention), {1 / e['paired_ratio_vs_ort_fp32']['toprt_pruned']:.2f}x ORT fp32 unpadded")
            sec = f"BERT-base, SST-2 dev ({n} sentences, {np.mean(lens):.1f} tokens avg), batch 1"
            pr = e["paired_ratio_vs_ort_fp32"]
            row(sec, f"ORT fp32 unpadded ({chosen[('bert-base', 'fp32')]})", t, ref, ref_ms=ref, ratio=1.0)
            row(sec, "ORT fp32 padded to 64", t, ms_["ort_pad64"], ref_ms=ref, ratio=pr["ort_pad64"])
            row(sec, f"ORT int8 dynamic unpadded ({chosen[('bert-base', 'int8')]})", t, ms_["ort_int8"], ref_ms=ref,
                ratio=pr["ort_int8"])
            row(sec, f"ORT int8 dynamic per channel, unpadded ({chosen[('bert-base', 'int8-pc')]})", t,
                ms_["ort_int8_pc"], ref_ms=ref, ratio=pr["ort_int8_pc"])
            row(sec, "toprt dense", t, ms_["toprt_dense"], ref_ms=ref, ratio=pr["toprt_dense"])
            row(sec, "toprt pruned", t, ms_["toprt_pruned"], ref_ms=ref, ratio=pr["toprt_pruned"],
                note=f"MAC reduction {mac['reduction_vs_unpadded']:.2f}x unpadded / "
                     f"{mac['reduction_vs_padded64']:.2f}x vs padded-64; "
                     f"{e['pruned_vs_ort_pad64_speed']:.2f}x the speed of ORT padded-64")
            row(sec, f"toprt bf16 pruned ({res['toprt_bf16_gemm']})", t, ms_["toprt_bf16_pruned"], ref_ms=ref,
                ratio=pr["toprt_bf16_pruned"],
                note=f"{e['bf16_pruned_vs_ort_pad64_speed']:.2f}x the speed of ORT fp32 padded-64")
            row(sec, f"toprt int8 pruned ({res['toprt_int8_gemm']})", t, ms_["toprt_int8_pruned"], ref_ms=ref,
                ratio=pr["toprt_int8_pruned"],
                note=f"{paired_ratio(times[('toprt_int8_pruned', t)], times[('ort_int8_pc', t)]):.2f}x ORT int8-pc's time")
        if args.sst2_batch > 1:
            sst["batched"] = sst2_batched(args, texts, tok, tp, sess, tsess, chosen, pruned_m, sthreads, row, pause,
                                          res["toprt_bf16_gemm"])
        meas["sst2"] = sst


def sst2_batched(args, texts, tok, tp, sess, tsess, chosen, pruned_m, sthreads, row, pause, res_gemm):
    """Throughput with `--sst2-batch` sentences per forward pass: toprt packs the batch without
    padding (and prunes it); ORT runs the same batches padded to 64 (ToP's convention), padded
    to the longest sentence of each batch (the cheapest padded batch), and one sentence at a
    time unpadded. All interleaved, pass by pass."""
    B = args.sst2_batch
    step = max(1, len(texts) // args.batch_texts)
    sample = texts[::step][:args.batch_texts]
    ids = [tok.encode(s).ids for s in sample]
    lens = [len(r) for r in ids]
    n = len(ids)
    if max(lens) >= 64:
        raise SystemExit(f"error: an SST-2 sample sentence has {max(lens)} tokens; the batched rows assume < 64")
    chunks = [ids[i:i + B] for i in range(0, n, B)]
    feeds = {"pad64": [feeds_for(c, pad_to=64) for c in chunks], "longest": [feeds_for(c) for c in chunks],
             "unpadded1": [feeds_for([r]) for r in ids]}
    tbatches = [toprt_ctypes.Batch(c) for c in chunks]
    mac = sst2_macs(tp, pruned_m, lens)
    log(f"\n== 3c. SST-2 dev, {n} sentences (every {step}th), {np.mean(lens):.1f} tokens average, "
        f"{len(chunks)} batches of up to {B}: throughput, interleaved ({args.sst2_rounds} rounds of one pass each)")
    out = {"sentences": n, "batch": B, "tokens": sum(lens), "macs": mac, "rounds": args.sst2_rounds, "runs": []}
    cands = []
    for t in sthreads:
        s32 = sess("bert-base", "fp32", t)
        td, tpr = tsess("dense", t, 64 * B), tsess("pruned", t, 64 * B)
        for k, fe in feeds.items():
            cands.append(((k, t), lambda s=s32, fe=fe: [s.run(["logits"], f) for f in fe]))
        tb = tsess("pruned_bf16", t, 64 * B)
        cands += [(("toprt_dense", t), lambda s=td: [s.time_run(b, False) for b in tbatches]),
                  (("toprt_pruned", t), lambda s=tpr: [s.time_run(b, True) for b in tbatches]),
                  (("toprt_bf16_dense", t), lambda s=tb: [s.time_run(b, False) for b in tbatches]),
                  (("toprt_bf16_pruned", t), lambda s=tb: [s.time_run(b, True) for b in tbatches]),
                  (("toprt_int8_pruned", t),
                   lambda s=tsess("pruned_int8", t, 64 * B): [s.time_run(b, True) for b in tbatches])]
    times = interleave(cands, args.sst2_rounds, warmup=1, pause=pause)
    for t in sthreads:
        tpr = tsess("pruned", t, 64 * B)
        dense = [l for b in tbatches for l in tpr.floats(b, False, "logits")]
        pruned = [l for b in tbatches for l in tpr.floats(b, True, "logits")]
        agree = float(np.mean([np.argmax(d) == np.argmax(p) for d, p in zip(dense, pruned)]))
        keys = ("pad64", "longest", "unpadded1", "toprt_dense", "toprt_pruned", "toprt_bf16_dense", "toprt_bf16_pruned",
                "toprt_int8_pruned")
        tput = {k: n / statistics.median(times[(k, t)]) for k in keys}
        speed = {k: paired_ratio(times[("pad64", t)], times[(k, t)]) for k in keys}
        tb = tsess("pruned_bf16", t, 64 * B)
        bf16_pruned = [lg for b in tbatches for lg in tb.floats(b, True, "logits")]
        agree_bf16 = float(np.mean([np.argmax(d) == np.argmax(p) for d, p in zip(dense, bf16_pruned)]))
        e = {"threads": t, "seq_per_s": tput, "speed_vs_ort_pad64_paired": speed, "top1_dense_vs_pruned": agree,
             "top1_dense_vs_bf16_pruned": agree_bf16,
             "pruned_vs_ort_pad64": speed["toprt_pruned"],
             "pruned_vs_ort_unpadded1": paired_ratio(times[("unpadded1", t)], times[("toprt_pruned", t)]),
             "bf16_pruned_vs_ort_pad64": speed["toprt_bf16_pruned"],
             "bf16_pruned_vs_ort_unpadded1": paired_ratio(times[("unpadded1", t)], times[("toprt_bf16_pruned", t)]),
             "loadavg": loadavg()}
        out["runs"].append(e)
        log(f"  threads {t} (load average {loadavg()}); sentences/s, and the speed relative to ORT fp32 batch {B} "
            "padded to 64 (paired)")
        table = ((f"ORT fp32 batch {B}, padded to 64", "pad64"), (f"ORT fp32 batch {B}, padded to longest", "longest"),
                 ("ORT fp32 batch 1, unpadded", "unpadded1"), (f"toprt dense batch {B}, packed", "toprt_dense"),
                 (f"toprt pruned batch {B}, packed", "toprt_pruned"),
                 (f"toprt bf16 dense batch {B}, packed", "toprt_bf16_dense"),
                 (f"toprt bf16 pruned batch {B}, packed", "toprt_bf16_pruned"),
                 (f"toprt int8 pruned batch {B}, packed", "toprt_int8_pruned"))
        for label, k in table:
            log(f"  {label:40} {tput[k]:>8.2f} {speed[k]:>7.2f}x")
        log(f"  toprt pruned throughput vs ORT fp32 padded to 64: {e['pruned_vs_ort_pad64']:.2f}x; vs ORT fp32 batch 1 "
            f"unpadded: {e['pruned_vs_ort_unpadded1']:.2f}x; top-1 dense = pruned on {agree:.1%} of the sentences")
        log(f"  toprt bf16 pruned: {e['bf16_pruned_vs_ort_pad64']:.2f}x ORT fp32 padded to 64, "
            f"{e['bf16_pruned_vs_ort_unpadded1']:.2f}x ORT fp32 batch 1 unpadded; top-1 = f32 dense on "
            f"{agree_bf16:.1%} (random weights: logits of nearly equal classes)")
        log(f"  pruned MAC reduction {mac['reduction_vs_unpadded']:.2f}x vs unpadded, "
            f"{mac['reduction_vs_padded64']:.2f}x vs padded to 64")
        sec = f"BERT-base, SST-2 dev ({n} sentences, {np.mean(lens):.1f} tokens avg), batches of {B}: throughput"
        ref = 1e3 / tput["pad64"]
        for label, k in ((f"ORT fp32 padded to 64 ({chosen[('bert-base', 'fp32')]})", "pad64"),
                         ("ORT fp32 padded to the longest of each batch", "longest"),
                         ("ORT fp32 batch 1, unpadded (the same sentences)", "unpadded1"),
                         ("toprt dense, packed", "toprt_dense"), ("toprt pruned, packed", "toprt_pruned"),
                         (f"toprt bf16 dense, packed ({res_gemm})", "toprt_bf16_dense"),
                         (f"toprt bf16 pruned, packed ({res_gemm})", "toprt_bf16_pruned"),
                         ("toprt int8 pruned, packed", "toprt_int8_pruned")):
            note = ""
            if k in ("toprt_pruned", "toprt_bf16_pruned", "toprt_int8_pruned"):
                note = (f"MAC reduction {mac['reduction_vs_unpadded']:.2f}x unpadded / "
                        f"{mac['reduction_vs_padded64']:.2f}x vs padded-64; ratio column is vs ORT padded-64 here; "
                        f"{speed[k]:.2f}x ORT padded-64's and "
                        f"{paired_ratio(times[('unpadded1', t)], times[(k, t)]):.2f}x ORT batch-1's throughput")
            row(sec, label, t, tput=tput[k], ref_ms=ref, ratio=1 / speed[k], note=note)
    return out
