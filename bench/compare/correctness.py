"""The correctness check before any timing: the same token ids through toprt (`toprt run
--hidden-states`) and every ORT graph. fp32 must agree to 1e-3, toprt bf16 must keep every
hidden row at cosine >= 0.999 of ORT fp32. Every int8 configuration (toprt, ORT per tensor,
ORT per channel) is measured against ORT fp32 on the same ids: the cosine of the output and
the worst hidden row; toprt int8 must keep >= 0.99 and >= 0.98 (a kernel or layout bug
gives far less), ORT int8 is reported beside it."""

import json

import numpy as np

from common import OUT, log
from models import random_ids
from ort_side import feeds_for, ort_session
from toprt_side import write_ids_jsonl


def check(tp, tok, variants, dense_m, minilm_m, bf16_m, int8_m, res):
    """Runs the check, records it in res["correctness"]; on a failure writes results.json and exits."""
    log("\n== correctness: the same input through both runtimes")
    sentence = "it 's a charming and often affecting journey ."
    ids_text = tok.encode(sentence).ids
    ids_rand = random_ids(1, 128, seed=3)[0]
    corr = {}
    failed = []
    inputs = (("sentence", ids_text), ("random-128", ids_rand))

    def toprt_outputs(model, tag):
        """Every input through `toprt run --hidden-states`, one JSON object per input."""
        jl = OUT / "logs" / f"correct-{tag}.jsonl"
        outp = OUT / "logs" / f"correct-{tag}.out.jsonl"
        write_ids_jsonl(jl, [ids for _, ids in inputs])
        tp.run_jsonl(model, jl, 2, "--hidden-states", output=outp)
        return [json.loads(ln) for ln in outp.read_text().splitlines()]

    for name, model, out_key in (("bert-base", dense_m, "logits"), ("minilm", minilm_m, "embedding")):
        got = toprt_outputs(model, name)
        for var in ("fp32", "fp32+bert-fusion"):
            if (name, var) not in variants:
                continue
            sess = ort_session(variants[(name, var)], 2)
            for (label, ids), g in zip(inputs, got):
                o, hdn = sess.run([out_key, "last_hidden_state"], feeds_for([ids]))
                d_out = float(np.abs(o[0] - np.array(g[out_key], np.float32)).max())
                d_hid = float(np.abs(hdn[0] - np.array(g["last_hidden_state"], np.float32)).max())
                entry = {"max_abs_diff_" + out_key: d_out, "max_abs_diff_last_hidden_state": d_hid,
                         "tokens": len(ids)}
                if var.startswith("fp32"):
                    ok = d_out < 1e-3 and d_hid < 1e-3
                    entry["pass"] = ok
                    if not ok:
                        failed.append(f"{name} {label} vs ORT {var}")
                    if name == "bert-base" and label == "sentence":  # the padded graph path
                        op_, = sess.run([out_key], feeds_for([ids], pad_to=64))
                        entry["padded64_vs_unpadded_max_abs_diff"] = float(np.abs(op_[0] - o[0]).max())
                        if entry["padded64_vs_unpadded_max_abs_diff"] >= 1e-3:
                            failed.append(f"{name}: ORT padded-to-64 differs from unpadded")
                corr[f"{name} {label} vs ORT {var}"] = entry
                log(f"  {name:9} {label:10} toprt vs ORT {var:17}: max|Δ {out_key}| = {d_out:.2e}, "
                    f"max|Δ last_hidden_state| = {d_hid:.2e}"
                    + (f", ORT padded-64 vs unpadded {entry['padded64_vs_unpadded_max_abs_diff']:.1e}"
                       if "padded64_vs_unpadded_max_abs_diff" in entry else "")
                    + ("" if not var.startswith("fp32") else ("  ok" if entry["pass"] else "  FAIL")))
            del sess
    # bf16 toprt models against ORT fp32: cosine of the output and of every hidden row.
    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    for name, model, out_key in (("bert-base", bf16_m["dense"], "logits"), ("minilm", bf16_m["minilm"], "embedding")):
        got = toprt_outputs(model, f"{name}-bf16")
        sess = ort_session(variants[(name, "fp32")], 2)
        for (label, ids), g in zip(inputs, got):
            o, hdn = sess.run([out_key, "last_hidden_state"], feeds_for([ids]))
            h = np.array(g["last_hidden_state"], np.float32)
            rows = min(cos(h[r], hdn[0][r]) for r in range(len(ids)))
            entry = {"cosine_" + out_key: cos(np.array(g[out_key], np.float32), o[0]), "min_hidden_row_cosine": rows,
                     "max_abs_diff_" + out_key: float(np.abs(o[0] - np.array(g[out_key], np.float32)).max())}
            entry["pass"] = rows >= 0.999
            if not entry["pass"]:
                failed.append(f"{name} bf16 {label} vs ORT fp32 (hidden-row cosine {rows:.5f})")
            corr[f"{name} {label} toprt bf16 vs ORT fp32"] = entry
            log(f"  {name:9} {label:10} toprt bf16 vs ORT fp32: max|Δ {out_key}| = {entry['max_abs_diff_' + out_key]:.2e}, "
                f"min hidden-row cosine {rows:.6f}  {'ok' if entry['pass'] else 'FAIL'}")
        del sess
    # int8 against ORT fp32: toprt's int8 files and ORT's two dynamic int8 graphs.
    for name, model, out_key in (("bert-base", int8_m["dense"], "logits"), ("minilm", int8_m["minilm"], "embedding")):
        got = toprt_outputs(model, f"{name}-int8")
        ref = ort_session(variants[(name, "fp32")], 2)
        refs = [ref.run([out_key, "last_hidden_state"], feeds_for([ids])) for _, ids in inputs]
        del ref
        configs = [("toprt int8", [(np.array(g[out_key], np.float32), np.array(g["last_hidden_state"], np.float32))
                                   for g in got])]
        for var in ("int8", "int8-pc"):
            sess = ort_session(variants[(name, var)], 2)
            configs.append((f"ORT {var}", [tuple(x[0] for x in sess.run([out_key, "last_hidden_state"],
                                                                         feeds_for([ids]))) for _, ids in inputs]))
            del sess
        for label_cfg, outs in configs:
            for (label, ids), (o, h), (ro, rh) in zip(inputs, outs, refs):
                rows = min(cos(h[r], rh[0][r]) for r in range(len(ids)))
                entry = {"cosine_" + out_key: cos(o, ro[0]), "min_hidden_row_cosine": rows}
                if label_cfg.startswith("toprt"):
                    entry["pass"] = entry["cosine_" + out_key] >= 0.99 and rows >= 0.98
                    if not entry["pass"]:
                        failed.append(f"{name} int8 {label} vs ORT fp32 (output cosine "
                                      f"{entry['cosine_' + out_key]:.5f}, hidden-row cosine {rows:.5f})")
                corr[f"{name} {label} {label_cfg} vs ORT fp32"] = entry
                log(f"  {name:9} {label:10} {label_cfg:10} vs ORT fp32: cosine of {out_key} "
                    f"{entry['cosine_' + out_key]:.6f}, min hidden-row cosine {rows:.6f}"
                    + ("" if "pass" not in entry else ("  ok" if entry["pass"] else "  FAIL")))
    res["correctness"] = corr
    if failed:
        (OUT / "results.json").write_text(json.dumps(res, indent=2))
        raise SystemExit("error: CORRECTNESS CHECK FAILED (fp32 threshold 1e-3, bf16 hidden-row cosine 0.999, "
                         "int8 output cosine 0.99 and hidden-row cosine 0.98): "
                         + "; ".join(failed))
    log("  fp32 agreement < 1e-3, bf16 hidden-row cosine >= 0.999, toprt int8 cosines >= 0.99 / 0.98 everywhere "
        "(ORT int8 shown beside)")
