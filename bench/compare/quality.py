#!/usr/bin/env python3
"""What int8 costs in answers: toprt's int8 and ONNX Runtime's dynamic int8 against fp32 on
real text, with a real fine-tuned model. Started by bench/compare/quality.sh.

Models
  minilm-sst2  all-MiniLM-L6-v2 fine-tuned on SST-2 train.tsv
               (scripts/make_sst2_classifier.sh): a sentiment classifier.
  minilm       all-MiniLM-L6-v2 itself: sentence embeddings (mean pooling, L2 norm).

Text: every sentence of ../shared/data/sst2/dev.tsv (872), which neither the fine-tune nor
the int8 calibration saw; toprt-calibrate draws its sentences from train.tsv.

Configurations, all on the same token ids (the model's tokenizer, no truncation needed):
  toprt f32, toprt bf16 (on this CPU's fastest path), toprt int8 (toprt-convert --dtype
  int8: every linear int8), toprt int8 calibrated (toprt-calibrate --dtype int8 on 512
  train sentences); ORT fp32, ORT int8 per tensor and per channel (quantize_dynamic on the
  ONNX graph bench/compare builds from the same weights), one sentence at a time.

Reported: for the classifier, accuracy on the dev labels and top-1 agreement with toprt
f32 (and with ORT fp32); for the embeddings, the cosine to ORT fp32 (mean and worst).
Targets of the int8 work: agreement >= 99.5 %, accuracy within 0.2 points of f32, mean
embedding cosine >= 0.999. Writes target/compare/quality.json and quality.md.
"""

import argparse
import csv
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np

import toprt_ctypes
from common import MINILM_DIR, OUT, REPO, SST2, SST2_TRAIN, log, loadavg
from models import load_weights
from onnx_graph import build_onnx
from ort_side import feeds_for, ort_int8, ort_session
from toprt_side import Toprt

os.chdir(REPO)

CLASSIFIER_DIR = Path("target/test-models/minilm-sst2")
Q = OUT / "quality"


def read_dev():
    with open(SST2, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]


def onnx_variants(name, folder, head):
    """The fp32 ONNX graph of a checkpoint and its two dynamic int8 versions."""
    cfg = json.loads((folder / "config.json").read_text())
    plain = Q / f"{name}.onnx"
    stamp = Q / f"{name}.onnx.stamp"
    key = f"{(folder / 'model.safetensors').stat().st_mtime_ns} {(folder / 'model.safetensors').stat().st_size}"
    if not (stamp.is_file() and stamp.read_text() == key):
        log(f"{name}: writing the ONNX graph and its int8 versions ...")
        build_onnx(load_weights(folder), cfg, head, plain)
        for kind, pc in (("int8", False), ("int8-pc", True)):
            err = ort_int8(plain, Q / f"{name}.{kind}.onnx", pc)
            if err:
                raise SystemExit(f"error: quantize_dynamic ({kind}) of {name}: {err}")
        stamp.write_text(key)
    return {"ORT fp32": plain, "ORT int8": Q / f"{name}.int8.onnx", "ORT int8-pc": Q / f"{name}.int8-pc.onnx"}


def toprt_variants(tp, name, folder, threads):
    """toprt files of a checkpoint: f32, bf16, int8, int8 calibrated on SST-2 train."""
    files = {"toprt f32": Q / f"{name}.toprt", "toprt bf16": Q / f"{name}-bf16.toprt",
             "toprt int8": Q / f"{name}-int8.toprt", "toprt int8 calibrated": Q / f"{name}-int8-cal.toprt"}
    tp.convert(folder, files["toprt f32"])
    tp.convert(folder, files["toprt bf16"], "--dtype", "bf16")
    tp.convert(folder, files["toprt int8"], "--dtype", "int8")
    log(f"{name}: toprt-calibrate --dtype int8 on {SST2_TRAIN} ...")
    tp.calibrate(files["toprt f32"], files["toprt int8 calibrated"], SST2_TRAIN, "--threads", threads)
    return files


def outputs(name, folder, head, ids, tp, lib, threads, batch):
    """{configuration: [output vector per sentence]} for every configuration."""
    out_key = "logits" if head == "classifier" else "embedding"
    got, kernels = {}, {}
    for label, path in toprt_variants(tp, name, folder, threads).items():
        s = lib.model(path).session(threads, 0)
        kernels[label] = s.kernel
        rows = []
        for i in range(0, len(ids), batch):
            rows += s.floats(toprt_ctypes.Batch(ids[i:i + batch]), False, out_key)
        got[label] = np.array(rows, np.float32)
        log(f"  {name}: {label:22} {len(rows)} sentences ({s.kernel})")
    for label, path in onnx_variants(name, folder, head).items():
        sess = ort_session(path, threads)
        got[label] = np.array([sess.run([out_key], feeds_for([r]))[0][0] for r in ids], np.float32)
        log(f"  {name}: {label:22} {len(ids)} sentences")
    return got, kernels


def cosines(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="target/release", help="where toprt, toprt-convert, toprt-calibrate are")
    ap.add_argument("--threads", type=int, default=2, help="threads of every session (results do not depend on it)")
    ap.add_argument("--batch", type=int, default=32, help="sentences per toprt forward pass")
    args = ap.parse_args()
    for need, how in ((SST2, "the shared data folder next to the repository"),
                      (SST2_TRAIN, "the shared data folder next to the repository"),
                      (CLASSIFIER_DIR / "model.safetensors", "bash scripts/make_sst2_classifier.sh"),
                      (MINILM_DIR / "model.safetensors", "bash scripts/fetch-test-models.sh")):
        if not need.is_file():
            raise SystemExit(f"error: {need} is missing ({how})")
    import onnxruntime as ort
    import tokenizers

    Q.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tp = Toprt(Path(args.bin_dir))
    lib = toprt_ctypes.Lib(Path(args.bin_dir) / "libtoprt.so")
    texts, labels = read_dev()
    labels = np.array(labels)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    training = json.loads((CLASSIFIER_DIR / "training.json").read_text())
    res = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu,
           "onnxruntime": ort.__version__, "sentences": len(texts), "classifier_training": training, "sections": {}}
    log(f"SST-2 dev: {len(texts)} sentences; classifier {CLASSIFIER_DIR} (dev accuracy in training "
        f"{training.get('dev_accuracy')}); {cpu}")

    # ---- the classifier: accuracy and top-1 agreement
    tok = tokenizers.Tokenizer.from_file(str(CLASSIFIER_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = [tok.encode(t).ids for t in texts]
    got, kernels = outputs("minilm-sst2", CLASSIFIER_DIR, "classifier", ids, tp, lib, args.threads, args.batch)
    top = {k: v.argmax(1) for k, v in got.items()}
    ref, ref_ort = top["toprt f32"], top["ORT fp32"]
    cls = {}
    for k in got:
        cls[k] = {"accuracy": float(np.mean(top[k] == labels)),
                  "agreement_with_toprt_f32": float(np.mean(top[k] == ref)),
                  "disagreements_with_toprt_f32": int(np.sum(top[k] != ref)),
                  "agreement_with_ort_fp32": float(np.mean(top[k] == ref_ort)),
                  "max_abs_logit_diff_vs_toprt_f32": float(np.abs(got[k] - got["toprt f32"]).max()),
                  "kernel": kernels.get(k, "")}
    res["sections"]["classifier"] = cls

    # ---- the embedding model: cosine to fp32
    tok = tokenizers.Tokenizer.from_file(str(MINILM_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = [tok.encode(t).ids for t in texts]
    got, kernels = outputs("minilm", MINILM_DIR, "embedding", ids, tp, lib, args.threads, args.batch)
    emb = {}
    for k in got:
        c = cosines(got[k], got["ORT fp32"])
        emb[k] = {"mean_cosine_to_ort_fp32": float(c.mean()), "worst_cosine_to_ort_fp32": float(c.min()),
                  "mean_cosine_to_toprt_f32": float(cosines(got[k], got["toprt f32"]).mean()),
                  "kernel": kernels.get(k, "")}
    res["sections"]["embedding"] = emb
    res["elapsed_s"] = time.perf_counter() - t0
    res["loadavg"] = loadavg()

    f32 = cls["toprt f32"]["accuracy"]
    md = ["# int8 quality on real text (bench/compare/quality.sh)", "",
          f"{res['started']}, {cpu}, onnxruntime {ort.__version__}. SST-2 dev, {len(texts)} sentences, none seen "
          "by the fine-tune or the calibration.", "",
          f"## Classifier: all-MiniLM-L6-v2 fine-tuned on SST-2 train (training's dev accuracy "
          f"{training.get('dev_accuracy', float('nan')):.4f})", "",
          "| configuration | accuracy | Δ vs toprt f32 (points) | top-1 = toprt f32 | disagreements | top-1 = ORT fp32 |",
          "|---|---:|---:|---:|---:|---:|"]
    for k, v in cls.items():
        md.append(f"| {k} | {v['accuracy']:.2%} | {100 * (v['accuracy'] - f32):+.2f} | "
                  f"{v['agreement_with_toprt_f32']:.2%} | {v['disagreements_with_toprt_f32']} | "
                  f"{v['agreement_with_ort_fp32']:.2%} |")
    md += ["", "## Embeddings: all-MiniLM-L6-v2, cosine to ORT fp32 (the Hugging Face model's output to 1e-3)", "",
           "| configuration | mean cosine | worst cosine |", "|---|---:|---:|"]
    for k, v in emb.items():
        md.append(f"| {k} | {v['mean_cosine_to_ort_fp32']:.5f} | {v['worst_cosine_to_ort_fp32']:.5f} |")
    md += ["", "Kernels (toprt_session_kernel):", ""]
    md += [f"- classifier, {k}: {v['kernel']}" for k, v in cls.items() if v["kernel"]]
    md += ["", f"Targets: toprt int8 calibrated agreement >= 99.5 %, accuracy within 0.2 points, mean embedding "
           f"cosine >= 0.999. Took {res['elapsed_s']:.0f} s.", ""]
    (OUT / "quality.json").write_text(json.dumps(res, indent=2))
    (OUT / "quality.md").write_text("\n".join(md))
    log("\n" + "\n".join(md))
    log("wrote target/compare/quality.json and target/compare/quality.md")


if __name__ == "__main__":
    main()
