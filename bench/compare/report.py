"""The report: table rows as they are measured, how each number was taken, and the
markdown of target/compare/report.md."""


class Rows:
    """row(section, config, threads, ...) adds a row to the report table; `rows` in order."""

    def __init__(self):
        self.rows = []

    def __call__(self, section, config, threads_, ms=None, tput=None, ref_ms=None, note="", ratio=None):
        """`ratio`: time per sequence over the reference's, paired by round; without it the
        ratio of the medians."""
        per_seq = ms if ms is not None else 1e3 / tput
        if ratio is None and ref_ms:
            ratio = per_seq / ref_ms
        self.rows.append({"section": section, "config": config, "threads": threads_, "latency_ms": ms,
                          "throughput_seq_s": tput, "ratio_vs_ort_fp32_unpadded": ratio, "note": note})


METHOD_NOTES = [
    "ORT: SessionOptions ORT_ENABLE_ALL, intra_op_num_threads = toprt's threads, inter_op 1, ORT_SEQUENTIAL, "
    "CPUExecutionProvider, intra-op spinning as ORT's default (on) unless --ort-no-spin; time of session.run for "
    "pre-tokenized int64 inputs (perf_counter), outputs logits/embedding only.",
    "ORT graph: written with onnx.helper (opset 17) from the same safetensors arrays; the faster of plain and "
    "onnxruntime.transformers-fused (opt_level 0, then ORT_ENABLE_ALL) is used, chosen per model and dtype at "
    "1 thread by the minimum over interleaved runs.",
    "ORT int8: onnxruntime.quantization.quantize_dynamic(weight_type=QInt8), activations quantized at run time; "
    "'int8' has one weight scale per tensor (the default), 'int8-pc' one per output channel (per_channel=True, "
    "toprt's scheme). The int8 targets compare toprt with ORT int8-pc.",
    "toprt int8: BERT-base files from toprt-convert --dtype int8 (every linear int8; random weights need no "
    "calibration); all-MiniLM-L6-v2 calibrated by toprt-calibrate --dtype int8 on SST-2 train.tsv sentences "
    "(8 outlier channels per linear in f32, the output-error guard) where ../shared/data is present, else "
    "--dtype int8. The correctness check measures every int8 configuration's agreement with fp32 on the same ids.",
    "toprt: the C library libtoprt.so through ctypes in the same process (toprt_session_run on token ids, "
    "logits or embedding requested, result freed: what a service does per request); one session per model "
    "and thread count. Dense = the dense file; pruned = the ToP file with pruning on; the ToP file with pruning "
    "off is a second dense measurement (bit-identical outputs to the dense file).",
    "Interleaving: in each section every configuration (both runtimes, every thread count) is called once per "
    "round, the order rotating by one each round, with a --pause-ms sleep before each call so ORT's spinning "
    "threads are idle when toprt starts and vice versa; warm-up rounds are not timed. Medians over rounds are "
    "reported, and every ratio is the median of the per-round ratios (paired).",
    "SST-2 batch 1: one round = one pass over the sampled sentences one at a time; ms per sentence = pass time / "
    "sentences. Batched: one round = one pass over all batches (toprt packs each batch without padding; ORT runs "
    "the same batches padded to 64 and to the longest sentence, and the sentences one at a time unpadded).",
]


def report_md(res, rows):
    m = res["machine"]
    out = ["# toprt vs ONNX Runtime (bench/compare)", "",
           f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs (AVX2 {m['avx2']}, AVX-512 {m['avx512f']}); "
           f"load average at start {m['loadavg_start']}, at end {m['loadavg_end']}. "
           f"onnxruntime {res['versions']['onnxruntime']} (intra-op spinning "
           f"{'on' if res['ort_intra_op_spinning'] else 'off'}); toprt kernel tier {res.get('toprt_isa', '?')}, "
           f"bf16 GEMM {res.get('toprt_bf16_gemm', '?')}. "
           f"Run {res['started']}, {res['elapsed_s']:.0f} s.", ""]
    busy = (m["loadavg_start"] or [0])[0]  # before this run added its own load
    if busy > m["logical_cpus"] - 0.5:
        out += [f"**Warning:** the machine was busy with other work (load average {busy:.1f} on "
                f"{m['logical_cpus']} CPUs): every time here is inflated, unevenly; runs with as many threads as "
                "CPUs suffer most (a thread that loses its CPU stalls the others at each barrier). Compare ratios "
                "within a block, not absolute times.", ""]
    out += [
           "Ratio = time per sequence divided by ORT fp32 unpadded's, same threads and inputs, as the median "
           "of per-round ratios (> 1: slower than ORT).", "",
           "| configuration | threads | latency median (ms) / throughput | ratio vs ORT fp32 unpadded | note |",
           "|---|---:|---:|---:|---|"]
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            out.append(f"| **{section}** | | | | |")
        val = f"{r['latency_ms']:.1f} ms" if r["latency_ms"] is not None else f"{r['throughput_seq_s']:.1f} seq/s"
        ratio = f"{r['ratio_vs_ort_fp32_unpadded']:.2f}x" if r["ratio_vs_ort_fp32_unpadded"] else ""
        out.append(f"| {r['config']} | {r['threads']} | {val} | {ratio} | {r['note']} |")
    ps = res["method"]["pruned_schedule"]
    how = (f"`toprt-convert --keep-ratio {ps['keep_ratio']}` (top-k per location)" if "keep_ratio" in ps else
           f"ToP rank bins (`toprt-convert --zs`), bin_num {ps['top_bins']['bin_num']}, prune locations "
           f"{ps['top_bins']['prune_locations']}, {ps['top_bins']['kept_bins']} bins kept per location")
    out += ["", f"Pruned model: {how}; at 128 tokens "
                f"the layers see {ps['tokens_per_layer_at_128']} tokens (sparsity {ps['token_sparsity_at_128']:.1%}, "
                f"MAC reduction {ps['mac_reduction_at_128']:.2f}x)."]
    ch = res["method"]["ort_graph_choice"]
    out += ["", "ORT graph used: " + "; ".join(f"{k}: {v['chosen']} (" + ", ".join(
        f"{a} {t[0]:.1f} ms" for a, t in v["min_and_median_ms_1_thread"].items()) + ")" for k, v in ch.items())
        + " (min of 1-thread runs; batch 1 × 128 for BERT-base, 8 × 128 for MiniLM)"]
    out += ["", "How each number was measured:", ""] + [f"- {n}" for n in METHOD_NOTES]
    return "\n".join(out) + "\n"
