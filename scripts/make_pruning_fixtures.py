#!/usr/bin/env python3
"""Builds the pruning checkpoint fixtures (deterministic, small):

  tests/fixtures/top-best/   a ToP `best/` folder as a ToP run writes it:
      config.json (architectures ToPBertForSequenceClassification, output_attentions
      true), pytorch_model.bin (standard BertForSequenceClassification keys incl.
      bert.embeddings.position_ids), zs.pt ({token_z f32 [3, 20], pruner_z [3]} with
      the storage location rewritten to "cuda:0", as saved from a GPU run, and a gate
      that is off), l0_module.pt (a pickled Python object of a class that does not
      exist outside ToP: it must never be unpickled). No tokenizer files, as in ToP's
      best/ folders: convert with --tokenizer.
  tests/fixtures/ltp-tiny/   an LTP checkpoint: model_type "ltp", I-BERT ("ibert.")
      RoBERTa weights with `...attention.self.pruner.keep_threshold` parameters and
      final_token_threshold in config.json; tokenizer.json of the tiny RoBERTa.

Run from anywhere: python3 scripts/make_pruning_fixtures.py (needs torch, transformers).
"""

import json
import os
import shutil
import sys
import zipfile

import torch
from transformers import BertConfig, BertForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")


def rewrite_location_to_cuda(path):
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    old, new = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            if name.endswith("/data.pkl"):
                assert old in data
                data = data.replace(old, new)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)


class L0ModuleForMAC(torch.nn.Module):
    """Stand-in for ToP's pickled module: its class only exists in ToP's source."""

    def __init__(self):
        super().__init__()
        self.token_loga = torch.nn.Parameter(torch.zeros(3, 20))


def top_best():
    out = os.path.join(FIX, "top-best")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(20)
    vocab = sum(1 for _ in open(os.path.join(FIX, "tiny-bert-st", "vocab.txt"), encoding="utf-8"))
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=512, num_labels=2,
                     pad_token_id=0, output_attentions=True, output_hidden_states=True)
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    sd = model.state_dict()
    sd["bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    torch.save(sd, os.path.join(out, "pytorch_model.bin"))
    c = cfg.to_dict()
    c["architectures"] = ["ToPBertForSequenceClassification"]
    c["finetuning_task"] = "sst2"
    c["do_layer_distill"] = False
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    # 3 prune locations -> layers 1, 2, 3 of 4; non-monotone masks; the middle gate off
    # (int64 0 stacked with floats, as ToP's l0 module produces it).
    token_z = torch.tensor([
        [1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0],
        [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
        [1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0],
    ], dtype=torch.float32)
    pruner_z = torch.stack([torch.tensor(1.0), torch.tensor(0).float(), torch.tensor(1.0)])
    zs = os.path.join(out, "zs.pt")
    torch.save({"token_z": token_z, "pruner_z": pruner_z}, zs)
    rewrite_location_to_cuda(zs)
    torch.save(L0ModuleForMAC(), os.path.join(out, "l0_module.pt"))


def ltp_tiny():
    out = os.path.join(FIX, "ltp-tiny")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    src = os.path.join(FIX, "tiny-roberta-st")
    from safetensors.torch import load_file
    sd = load_file(os.path.join(src, "model.safetensors"))
    new = {}
    for k, v in sd.items():
        new[k.replace("roberta.", "ibert.", 1) if k.startswith("roberta.") else k] = v.clone()
    cfg = json.load(open(os.path.join(src, "config.json")))
    n = cfg["num_hidden_layers"]
    for l in range(n):
        new[f"ibert.encoder.layer.{l}.attention.self.pruner.keep_threshold"] = torch.tensor(0.012 * (l + 1))
    torch.save(new, os.path.join(out, "pytorch_model.bin"))
    cfg.update({"model_type": "ltp", "architectures": ["LTPForSequenceClassification"],
                "prune_mode": "absolute_threshold", "final_token_threshold": 0.01,
                "scoring_mode": "mean", "quant_mode": False})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    shutil.copy(os.path.join(src, "tokenizer.json"), out)


if __name__ == "__main__":
    top_best()
    ltp_tiny()
    print("wrote", os.path.join(FIX, "top-best"), "and", os.path.join(FIX, "ltp-tiny"), file=sys.stderr)
