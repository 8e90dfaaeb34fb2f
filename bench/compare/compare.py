#!/usr/bin/env python3
"""toprt vs ONNX Runtime on the same weights, in one run. Started by bench/compare/run.sh.

Models
  bert-base  a deterministic random HF BERT checkpoint (BertForSequenceClassification,
             12 x 768, 2 labels) written here under target/compare/, converted with
             toprt-convert (dense, and with a ToP rank-bin schedule) and written as an
             ONNX graph from the same numpy arrays.
  minilm     all-MiniLM-L6-v2 (real weights, target/test-models/), mean pooling + L2 norm.

The ONNX graphs are built with onnx.helper (opset 17: LayerNormalization, Erf GELU,
MatMul/Add/Reshape/Transpose/Softmax, additive -10000 attention mask) in the layout of a
Hugging Face export, so ORT's BERT fusions can recognise them.

Sections: BERT-base 1 x 128 (toprt f32 / bf16 / int8, dense and pruned; ORT fp32 / int8
per tensor / int8 per channel); MiniLM 32 x 128 throughput (f32, bf16, int8 against ORT
fp32 and int8); SST-2 dev sentences one at a time (ORT unpadded / padded to 64 / int8); SST-2 dev in
batches of --sst2-batch (toprt packs a batch without padding; ORT pads it to 64 or to its
longest sentence) as throughput. Empty --threads / --minilm-threads / --sst2-threads skip a
section.

Both runtimes run in this one Python process: ORT through its Python API, toprt through
its C library (libtoprt.so, bench/compare/toprt_ctypes.py), on the same token ids. Within a
section every configuration is timed once per round, in a rotating order, so a drift of the
shared machine hits all of them alike; ratios are medians of per-round ratios.
"""

# This file reads the options and runs the steps in order; each subject has its module:
# common.py (paths, log, run), models.py (the random BERT-base checkpoint, the ToP
# schedule, random token ids), onnx_graph.py (the ONNX graph), ort_side.py (ORT graph
# variants, their choice, sessions, feeds), toprt_side.py (toprt's tools and in-process
# sessions), timing.py (interleaved rounds, paired ratios), correctness.py (both runtimes
# on the same ids), sections.py (the measured sections), report.py (rows and report.md).

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import correctness
import ort_side
import sections
import toprt_ctypes
import toprt_side
from common import MINILM_DIR, OUT, REPO, SST2_TRAIN, log, loadavg
from models import TOP_BIN_NUM, TOP_FIRST, TOP_KEPT_BINS, make_random_bert, write_top_zs
from report import METHOD_NOTES, Rows, report_md
from toprt_side import Toprt, parse_mac_table

os.chdir(REPO)  # every path is relative to the repository root


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="target/release", help="where toprt, toprt-convert, engine-bench are")
    ap.add_argument("--threads", default="1,2", help="thread counts for BERT-base 1 x 128 (dense and pruned)")
    ap.add_argument("--minilm-threads", default="1", help="thread counts for MiniLM batch 32 (empty: skip)")
    ap.add_argument("--sst2-threads", default="1", help="thread counts for the SST-2 real-text rows (empty: skip)")
    ap.add_argument("--texts", type=int, default=32, help="SST-2 dev sentences timed (evenly spaced sample)")
    ap.add_argument("--sst2-batch", type=int, default=32,
                    help="sentences per forward pass for the batched SST-2 throughput rows (0 or 1: skip)")
    ap.add_argument("--batch-texts", type=int, default=64, help="SST-2 dev sentences for the batched rows")
    ap.add_argument("--ort-no-spin", action="store_true",
                    help="session.intra_op.allow_spinning=0 (ORT's default spins; toprt's pool blocks)")
    ap.add_argument("--keep-ratio", default=None,
                    help="toprt-convert --keep-ratio for the pruned model instead of the ToP rank-bin schedule")
    ap.add_argument("--rounds", type=int, default=20,
                    help="interleaved rounds for BERT-base 1 x 128 (each round runs every configuration once)")
    ap.add_argument("--minilm-rounds", type=int, default=6, help="interleaved rounds for MiniLM 32 x 128")
    ap.add_argument("--sst2-rounds", type=int, default=4,
                    help="interleaved rounds for the SST-2 rows (each: one pass over the sentences)")
    ap.add_argument("--pause-ms", type=float, default=30.0,
                    help="sleep between two timed calls, so spinning worker threads go idle (0: none)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    mthreads = [int(t) for t in args.minilm_threads.split(",") if t]
    sthreads = [int(t) for t in args.sst2_threads.split(",") if t]
    ort_side.ORT_SPIN = not args.ort_no_spin

    import onnx
    import onnxruntime as ort
    import tokenizers

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "logs").mkdir(exist_ok=True)
    tp = Toprt(Path(args.bin_dir))
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    res = {
        "schema": 1,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "avx2": "avx2" in flags, "fma": "fma" in flags,
                    "avx512f": "avx512f" in flags, "python": platform.python_version(),
                    "loadavg_start": loadavg()},
        "ort_intra_op_spinning": ort_side.ORT_SPIN,
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
                     "tokenizers": tokenizers.__version__},
        "method": {},
        "correctness": {},
        "measurements": {},
    }
    log(f"machine: {cpu}, {os.cpu_count()} logical CPUs, load average {loadavg()}")
    log(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    t_start = time.perf_counter()

    # ---------------------------------------------------------------- models
    ckpt = OUT / "bert-base-random"
    make_random_bert(ckpt)
    bcfg = json.loads((ckpt / "config.json").read_text())
    dense_m = OUT / "bert-base-dense.toprt"
    pruned_m = OUT / "bert-base-pruned.toprt"
    minilm_m = OUT / "minilm.toprt"
    log("converting with toprt-convert ...")
    tp.convert(ckpt, dense_m, "--tokenizer", MINILM_DIR)
    if args.keep_ratio:
        schedule = {"keep_ratio": args.keep_ratio}
        tp.convert(ckpt, pruned_m, "--tokenizer", MINILM_DIR, "--keep-ratio", args.keep_ratio)
    else:
        zs = OUT / "top-zs.json"
        write_top_zs(zs, json.loads((ckpt / "config.json").read_text())["num_hidden_layers"])
        schedule = {"top_bins": {"bin_num": TOP_BIN_NUM, "prune_locations": f"{TOP_FIRST}..11",
                                 "kept_bins": TOP_KEPT_BINS, "zs": str(zs)}}
        tp.convert(ckpt, pruned_m, "--tokenizer", MINILM_DIR, "--zs", zs)
    conv_minilm = tp.convert(MINILM_DIR, minilm_m)
    # bf16 versions of all three (encoder linear weights rounded to bf16; see docs/FORMAT.md).
    bf16_m = {"dense": OUT / "bert-base-dense-bf16.toprt", "pruned": OUT / "bert-base-pruned-bf16.toprt",
              "minilm": OUT / "minilm-bf16.toprt"}
    tp.convert(ckpt, bf16_m["dense"], "--tokenizer", MINILM_DIR, "--dtype", "bf16")
    if args.keep_ratio:
        tp.convert(ckpt, bf16_m["pruned"], "--tokenizer", MINILM_DIR, "--keep-ratio", args.keep_ratio, "--dtype", "bf16")
    else:
        tp.convert(ckpt, bf16_m["pruned"], "--tokenizer", MINILM_DIR, "--zs", zs, "--dtype", "bf16")
    tp.convert(MINILM_DIR, bf16_m["minilm"], "--dtype", "bf16")
    # int8 versions: BERT-base (random weights) as toprt-convert --dtype int8 makes them;
    # MiniLM calibrated on SST-2 train sentences where the shared data is present.
    int8_m = {"dense": OUT / "bert-base-dense-int8.toprt", "pruned": OUT / "bert-base-pruned-int8.toprt",
              "minilm": OUT / "minilm-int8.toprt"}
    tp.convert(ckpt, int8_m["dense"], "--tokenizer", MINILM_DIR, "--dtype", "int8")
    if args.keep_ratio:
        tp.convert(ckpt, int8_m["pruned"], "--tokenizer", MINILM_DIR, "--keep-ratio", args.keep_ratio, "--dtype", "int8")
    else:
        tp.convert(ckpt, int8_m["pruned"], "--tokenizer", MINILM_DIR, "--zs", zs, "--dtype", "int8")
    if SST2_TRAIN.is_file():
        log(f"calibrating MiniLM int8 on {SST2_TRAIN} (toprt-calibrate) ...")
        tp.calibrate(minilm_m, int8_m["minilm"], SST2_TRAIN, "--threads", 2)
        res["method"]["minilm_int8"] = f"toprt-calibrate --dtype int8 --data {SST2_TRAIN} (defaults)"
    else:
        log(f"{SST2_TRAIN} absent: MiniLM int8 from toprt-convert --dtype int8 (no calibration)")
        tp.convert(MINILM_DIR, int8_m["minilm"], "--dtype", "int8")
        res["method"]["minilm_int8"] = "toprt-convert --dtype int8 (no calibration data)"
    mcfg = json.loads((MINILM_DIR / "config.json").read_text())
    schedule_txt = tp.inspect(pruned_m, [25, 64, 128], 64)
    (OUT / "pruned-schedule.txt").write_text(schedule_txt)
    macs128 = parse_mac_table(schedule_txt)[128]
    sparsity128 = 1 - sum(macs128[4]) / (128 * len(macs128[4]))
    log(f"pruned schedule {schedule}: tokens per layer at 128: {macs128[4]} "
        f"(token sparsity {sparsity128:.1%}, MAC reduction {macs128[2]:.2f}x)")
    res["method"]["pruned_schedule"] = {**schedule, "tokens_per_layer_at_128": macs128[4],
                                        "token_sparsity_at_128": sparsity128, "mac_reduction_at_128": macs128[2]}

    # ---------------------------------------------------------------- ORT graphs
    variants, fusion_stats = ort_side.prepare_graphs((("bert-base", ckpt, bcfg, "classifier"),
                                                      ("minilm", MINILM_DIR, mcfg, "embedding")))
    res["method"]["ort_transformers_fusion"] = fusion_stats
    res["method"]["ort_optimized_graph_ops"] = ort_side.optimized_graph_ops(variants)

    # ---------------------------------------------------------------- correctness
    tok = tokenizers.Tokenizer.from_file(str(MINILM_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=64)
    correctness.check(tp, tok, variants, dense_m, minilm_m, bf16_m, int8_m, res)

    # ---------------------------------------------------------------- pick the ORT graphs
    chosen, res["method"]["ort_graph_choice"] = ort_side.choose_graphs(variants)

    # ---------------------------------------------------------------- toprt in process
    lib = toprt_ctypes.Lib(Path(args.bin_dir) / "libtoprt.so")
    tmodels = {"dense": lib.model(dense_m), "pruned": lib.model(pruned_m), "minilm": lib.model(minilm_m),
               **{k + "_bf16": lib.model(p) for k, p in bf16_m.items()},
               **{k + "_int8": lib.model(p) for k, p in int8_m.items()}}
    tsess = toprt_side.Sessions(tmodels)
    res["toprt_library"] = lib.version
    res["toprt_isa"] = tsess("dense", 1).isa
    res["toprt_bf16_gemm"] = tp.gemm_kernel(bf16_m["dense"])
    # toprt_session_kernel: "<kernel>; <why>"; the rows name the kernel.
    res["toprt_kernel_choice"] = {k: tsess(k, 1).kernel for k in ("dense", "dense_bf16", "dense_int8", "minilm_int8")}
    res["toprt_int8_gemm"] = res["toprt_kernel_choice"]["dense_int8"].split(";")[0]
    res["toprt_minilm_int8_gemm"] = res["toprt_kernel_choice"]["minilm_int8"].split(";")[0]
    for k, v in res["toprt_kernel_choice"].items():
        log(f"toprt {k}: linears on {v}")

    # ---------------------------------------------------------------- the measured sections
    row = Rows()
    bench = sections.Bench(args=args, threads=threads, mthreads=mthreads, sthreads=sthreads, res=res, row=row,
                           sess=ort_side.Sessions(variants, chosen), tsess=tsess, chosen=chosen, tp=tp, tok=tok,
                           pruned_m=pruned_m, macs128=macs128, pause=args.pause_ms / 1e3)
    sections.bert_base_1x128(bench)
    sections.minilm_32x128(bench)
    sections.sst2(bench)

    # ---------------------------------------------------------------- report
    res["rows"] = row.rows
    res["machine"]["loadavg_end"] = loadavg()
    res["elapsed_s"] = time.perf_counter() - t_start
    res["method"]["notes"] = METHOD_NOTES
    (OUT / "results.json").write_text(json.dumps(res, indent=2))
    md = report_md(res, row.rows)
    (OUT / "report.md").write_text(md)
    log("\n" + md)
    log(f"wrote target/compare/results.json and target/compare/report.md ({res['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
