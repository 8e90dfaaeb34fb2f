"""The ONNX Runtime side: the graph variants (plain, onnxruntime.transformers-fused, int8),
sessions configured like toprt's (threads, no inter-op parallelism), feeds and timing."""

import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np

from common import OUT, log
from models import load_weights, random_ids
from onnx_graph import GRAPH_VERSION, build_onnx

ORT_SPIN = True  # ORT's default; --ort-no-spin turns it off
# ORT's dynamic int8 variants: "int8" one weight scale per tensor (quantize_dynamic's
# default), "int8-pc" one per output channel (per_channel=True; toprt's scheme).
INT8_KINDS = {"int8": False, "int8-pc": True}


def ort_fused(src: Path, dst: Path, cfg):
    """onnxruntime.transformers BERT fusion (offline, python only). Returns its fused-op
    statistics, or an error string."""
    try:
        from onnxruntime.transformers import optimizer

        m = optimizer.optimize_model(str(src), model_type="bert", num_heads=cfg["num_attention_heads"],
                                     hidden_size=cfg["hidden_size"], opt_level=0)
        m.save_model_to_file(str(dst))
        return {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    except Exception as e:  # the baseline must not depend on it
        return f"failed: {type(e).__name__}: {e}"


def ort_int8(src: Path, dst: Path, per_channel: bool):
    """Dynamic int8 (QInt8 weights, one scale per tensor or per output channel). Returns
    None or an error string."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        # DefaultTensorType: ONNX shape inference cannot type the outputs of the fused
        # com.microsoft ops (Attention, SkipLayerNormalization, ...); they are float.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
        return None
    except Exception as e:
        dst.unlink(missing_ok=True)
        return f"failed: {type(e).__name__}: {e}"


def ort_session(path: Path, threads: int, save_optimized: Path = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if not ORT_SPIN:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if save_optimized is not None:
        so.optimized_model_filepath = str(save_optimized)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def op_histogram(path: Path):
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    h = {}
    for n in m.graph.node:
        h[n.op_type] = h.get(n.op_type, 0) + 1
    return dict(sorted(h.items(), key=lambda kv: -kv[1]))


def feeds_for(ids_rows, pad_to=None):
    """int64 feeds for a list of id lists; padded (with mask 0) to `pad_to` or the longest."""
    n = pad_to or max(len(r) for r in ids_rows)
    ids = np.zeros((len(ids_rows), n), np.int64)
    mask = np.zeros((len(ids_rows), n), np.int64)
    for i, r in enumerate(ids_rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def time_ort(sess, feeds, out, n, warmup):
    for _ in range(warmup):
        sess.run([out], feeds)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        sess.run([out], feeds)
        ts.append((time.perf_counter() - t0) * 1e3)
    return ts


def prepare_graphs(models):
    """Writes the plain ONNX graph of each model, its onnxruntime.transformers fusion and
    the int8 versions of both (per tensor and per channel), unless the weights, the builder and ORT are unchanged since
    the last run. `models`: (name, checkpoint folder, config, head). Returns
    ({(model, variant): path}, fusion statistics and quantization errors by model)."""
    import onnxruntime as ort

    variants = {}  # (model, variant) -> path
    fusion_stats = {}
    for name, folder, cfg, head in models:
        plain = OUT / f"{name}.onnx"
        fused = OUT / f"{name}.fused.onnx"
        stamp = OUT / f"{name}.onnx.stamp"
        src_stamp = f"graph v{GRAPH_VERSION}; ort {ort.__version__}; " + \
            hashlib.sha256((folder / "model.safetensors").read_bytes()[:1 << 20]).hexdigest()
        if not (stamp.is_file() and stamp.read_text() == src_stamp and plain.is_file()):
            log(f"{name}: writing the ONNX graph, the onnxruntime.transformers fusion and int8 variants ...")
            build_onnx(load_weights(folder), cfg, head, plain)
            stats = ort_fused(plain, fused, cfg)
            (OUT / f"{name}.fusion.json").write_text(json.dumps(stats))
            q = {}
            for kind, pc in INT8_KINDS.items():
                q[kind] = ort_int8(plain, OUT / f"{name}.{kind}.onnx", pc)
                if fused.is_file() and isinstance(stats, dict):
                    q[kind + "+bert-fusion"] = ort_int8(fused, OUT / f"{name}.fused.{kind}.onnx", pc)
            (OUT / f"{name}.int8.json").write_text(json.dumps(q))
            stamp.write_text(src_stamp)
        stats = json.loads((OUT / f"{name}.fusion.json").read_text())
        qerr = json.loads((OUT / f"{name}.int8.json").read_text())
        fusion_stats[name] = {"transformers_fusion": stats, "int8_errors": {k: v for k, v in qerr.items() if v}}
        variants[(name, "fp32")] = plain
        if isinstance(stats, dict):
            variants[(name, "fp32+bert-fusion")] = fused
        for kind in INT8_KINDS:
            for var, path in ((kind, OUT / f"{name}.{kind}.onnx"), (kind + "+bert-fusion", OUT / f"{name}.fused.{kind}.onnx")):
                if qerr.get(var, "absent") is None:
                    variants[(name, var)] = path
                elif var in qerr:
                    log(f"{name}: quantize_dynamic of the {var} graph {qerr[var]}")
            if (name, kind) not in variants:
                raise SystemExit(f"error: quantize_dynamic failed on the plain {name} graph: {qerr.get(kind)}")
        log(f"{name}: onnxruntime.transformers fusion: {stats}")
    return variants, fusion_stats


def optimized_graph_ops(variants):
    """What ORT itself did at ORT_ENABLE_ALL: the op histogram of each variant's optimized graph."""
    ort_graphs = {}
    for (name, var), path in variants.items():
        opt = OUT / "logs" / f"{name}.{var}.ort-optimized.onnx"
        ort_session(path, 1, save_optimized=opt)
        ort_graphs[f"{name} {var}"] = op_histogram(opt)
        opt.unlink(missing_ok=True)
        for extra in opt.parent.glob(opt.name + "*"):
            extra.unlink()
    for k, h in ort_graphs.items():
        log(f"ORT_ENABLE_ALL graph, {k}: " + ", ".join(f"{o}×{c}" for o, c in list(h.items())[:12]))
    return ort_graphs


def choose_graphs(variants):
    """For each model and kind (fp32, int8, int8-pc), the faster of the plain and the fused graph at
    1 thread. Returns ({(model, kind): variant}, the timings behind each choice)."""

    def pick(name, a, b, feeds, out, n, threads_):
        """The faster of two graphs by the minimum over interleaved runs (A B A B): under a
        shared, noisy machine the minimum is the steadier estimate of what each can do."""
        if (name, b) not in variants:
            return a, {}
        sa, sb = ort_session(variants[(name, a)], threads_), ort_session(variants[(name, b)], threads_)
        ta, tb = [], []
        for _ in range(2):
            ta += time_ort(sa, feeds, out, n, 1)
            tb += time_ort(sb, feeds, out, n, 1)
        return (a if min(ta) <= min(tb) else b), {a: (min(ta), statistics.median(ta)), b: (min(tb), statistics.median(tb))}

    log("\n== choosing the faster ORT graph (plain ORT_ENABLE_ALL vs + onnxruntime.transformers BERT fusion)")
    chosen = {}
    choice_log = {}
    f128 = feeds_for(random_ids(1, 128))
    f8x128 = feeds_for(random_ids(8, 128))
    for name, feeds, out, n in (("bert-base", f128, "logits", 6), ("minilm", f8x128, "embedding", 3)):
        for kind in ("fp32", *INT8_KINDS):
            v, times = pick(name, kind, kind + "+bert-fusion", feeds, out, n, 1)
            chosen[(name, kind)] = v
            choice_log[f"{name} {kind}"] = {"chosen": v, "min_and_median_ms_1_thread": times}
            log(f"  {name} {kind}: " + ", ".join(f"{k} min {t[0]:.1f} / median {t[1]:.1f} ms" for k, t in times.items())
                + f" -> {v}")
    return chosen, choice_log


class Sessions:
    """sess(model, kind, threads): one session of the chosen graph per model, kind and
    thread count, made on first use."""

    def __init__(self, variants, chosen):
        self.variants, self.chosen, self.cache = variants, chosen, {}

    def __call__(self, name, kind, threads_):
        key = (name, kind, threads_)
        if key not in self.cache:
            self.cache[key] = ort_session(self.variants[(name, self.chosen[(name, kind)])], threads_)
        return self.cache[key]
