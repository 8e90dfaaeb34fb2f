#!/usr/bin/env python3
"""Fine-tunes all-MiniLM-L6-v2 on SST-2 into a sentiment classifier: the real fine-tuned
model the quality benchmarks measure int8 and calibrated pruning on.

    bash scripts/make_sst2_classifier.sh          # sets up target/train-venv, then runs this

Seeded and CPU-only: 0.3 epochs over `../shared/data/sst2/train.tsv` (631 batches of
32 of its 67,349 sentences, drawn in a seeded order), padded to the longest sentence of
each batch, AdamW at 1e-4 with linear decay and 6% warm-up, the BERT pooler and a fresh
2-way classifier on top of the MiniLM encoder. It takes about 10 minutes on 2 cores
(dev accuracy 0.8635 with the defaults; more --epochs train longer). `dev.tsv` is never
seen during training; its accuracy is printed at the end and written to `training.json` beside the model.

Writes a Hugging Face folder (BertForSequenceClassification: config.json,
model.safetensors, the MiniLM tokenizer files) to
`target/test-models/minilm-sst2/` (or `--out`). Needs torch, transformers, safetensors
(scripts/requirements-train.txt) and the MiniLM checkpoint
(`bash scripts/fetch-test-models.sh`).
"""
import argparse
import csv
import json
import os
import random
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["text"], int(r["label"])) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sst2"),
                    help="folder with train.tsv and dev.tsv (default: ../shared/data/sst2)")
    ap.add_argument("--base", default=os.path.join(ROOT, "target", "test-models", "all-MiniLM-L6-v2"),
                    help="the MiniLM checkpoint to start from")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "test-models", "minilm-sst2"),
                    help="output folder (replaced)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=float, default=0.3, help="passes over train.tsv (fractions allowed)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    for need in [os.path.join(args.data, "train.tsv"), os.path.join(args.data, "dev.tsv"),
                 os.path.join(args.base, "model.safetensors")]:
        if not os.path.exists(need):
            sys.exit(f"error: {need} is missing (SST-2 comes from ../shared/data; MiniLM from "
                     "bash scripts/fetch-test-models.sh)")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    if args.threads:
        torch.set_num_threads(args.threads)

    train, dev = read_tsv(os.path.join(args.data, "train.tsv")), read_tsv(os.path.join(args.data, "dev.tsv"))
    tok = AutoTokenizer.from_pretrained(args.base)
    cfg = BertConfig.from_pretrained(args.base, num_labels=2, id2label={0: "negative", 1: "positive"},
                                     label2id={"negative": 0, "positive": 1})
    cfg.architectures = ["BertForSequenceClassification"]
    model = BertForSequenceClassification.from_pretrained(args.base, config=cfg)

    steps = int(len(train) * args.epochs) // args.batch
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    order = []
    while len(order) < steps * args.batch:
        perm = list(range(len(train)))
        random.shuffle(perm)
        order += perm

    def batch_of(items):
        enc = tok([t for t, _ in items], padding=True, truncation=True, max_length=args.max_length,
                  return_tensors="pt")
        return enc, torch.tensor([y for _, y in items])

    model.train()
    t0, seen, loss_sum = time.time(), 0, 0.0
    for s in range(steps):
        enc, y = batch_of([train[i] for i in order[s * args.batch:(s + 1) * args.batch]])
        out = model(**enc, labels=y)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        loss_sum += out.loss.item()
        seen += 1
        if (s + 1) % 100 == 0 or s + 1 == steps:
            el = time.time() - t0
            print(f"step {s + 1}/{steps}  loss {loss_sum / seen:.4f}  {el:.0f} s  "
                  f"(~{el / (s + 1) * (steps - s - 1):.0f} s left)", file=sys.stderr, flush=True)
            loss_sum, seen = 0.0, 0

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(dev), 64):
            enc, y = batch_of(dev[i:i + 64])
            correct += int((model(**enc).logits.argmax(-1) == y).sum())
    acc = correct / len(dev)
    print(f"SST-2 dev accuracy: {acc:.4f} ({correct}/{len(dev)})", file=sys.stderr)

    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    model.save_pretrained(args.out, safe_serialization=True)
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(args.base, f)):
            shutil.copy(os.path.join(args.base, f), os.path.join(args.out, f))
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"base": "all-MiniLM-L6-v2", "data": "SST-2 train.tsv", "seed": args.seed,
                   "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "max_length": args.max_length,
                   "steps": steps, "dev_accuracy": acc, "seconds": round(time.time() - t0)}, f, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
