"""The tiny test checkpoints of toprt's correctness tests: random Hugging Face models of
each supported type, saved as model.safetensors (and pytorch_model.bin) with their
tokenizer files under tests/fixtures/, and the data readers both scripts use.
scripts/make_golden.py builds them and writes their goldens; see its docstring for the
folders and for how to regenerate them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
MINILM_DIR = REPO_ROOT / "target" / "test-models" / "all-MiniLM-L6-v2"

SEED_BERT = 20240601
SEED_ROBERTA = 20240602
SEED_DISTILBERT = 20240603
SEED_XLMR = 20240605
SEED_ELECTRA = 20240606
SEED_ELECTRA_DISC = 20240607
SEED_MPNET = 20240608
SEED_MODERNBERT = 20240609
SEED_MODERNBERT_BIAS = 20240610
SEED_DEBERTA = 20240611
SEED_DEBERTA_V2 = 20240613

# The tiny encoders' sizes and their three labels (each config adds its own fields).
TINY_SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, hidden_act="gelu")
THREE_LABELS = dict(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})

# ---------------------------------------------------------------------------
# data


def rel(p: Path) -> str:
    """Path relative to the repository root, for messages and committed files."""
    try:
        return str(Path(p).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


def read_sst2(data: Path, split: str) -> list[str]:
    path = data / "sst2" / f"{split}.tsv"
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].startswith("text\t"), f"unexpected header in {path}"
    return [ln.split("\t")[0].strip() for ln in lines[1:] if ln.strip()]


def read_bbc(data: Path) -> list[str]:
    path = data / "bbcnews" / "bbcnews.tsv"
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].startswith("label\t"), f"unexpected header in {path}"
    return [ln.split("\t", 1)[1].strip() for ln in lines[1:] if "\t" in ln]

# ---------------------------------------------------------------------------
# tiny checkpoints


def randomize_all(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with non-trivial random values.

    transformers' own init leaves biases at 0 and LayerNorm at (1, 0), which would let
    an implementation that ignores them pass. Here every tensor matters: weights,
    biases and embeddings ~ N(0, 0.1^2), LayerNorm weight ~ 1 + N(0, 0.1^2) (BERT's
    `LayerNorm`, DistilBERT's `*_layer_norm`, ModernBERT's `norm`, `attn_norm`, ...).
    Parameters are visited in sorted-name order so the result depends only on the seed.
    """
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith(("LayerNorm.weight", "norm.weight")):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def write_json(path: Path, obj, indent=2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def save_pair(model, st_dir: Path, pt_dir: Path | None, tokenizer_files: dict[str, object]) -> None:
    """Save `model` as model.safetensors in st_dir and pytorch_model.bin in pt_dir (if
    given)."""
    dirs = [d for d in (st_dir, pt_dir) if d is not None]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt"):
            if (d / stale).exists():
                (d / stale).unlink()
        model.config.save_pretrained(d)
        for fname, content in tokenizer_files.items():
            if isinstance(content, str):
                (d / fname).write_text(content, encoding="utf-8")
            else:
                write_json(d / fname, content)
    model.save_pretrained(st_dir, safe_serialization=True)
    (st_dir / "model.safetensors").chmod(0o644)
    if pt_dir is not None:
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        torch.save(state, pt_dir / "pytorch_model.bin")
    # save_pretrained may add files we do not want to ship (nothing else is expected).
    for d in dirs:
        extra = sorted(
            p.name for p in d.iterdir()
            if p.name not in {"config.json", "model.safetensors", "pytorch_model.bin", *tokenizer_files}
        )
        assert not extra, f"unexpected files in {rel(d)}: {extra}"


def make_tiny_bert_vocab(minilm_vocab: Path) -> list[str]:
    """A 2,999-entry WordPiece vocab cut from MiniLM's (bert-base-uncased) vocab.

    [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4, deliberately not BERT's 0/100/101/102/103,
    so special ids must be looked up by name), then every single character, every '##c'
    continuation, then the 1,000 most frequent remaining entries. Any word made of
    known characters still tokenizes (into short wordpieces), so real text works.
    """
    src = minilm_vocab.read_text(encoding="utf-8").split("\n")
    if src and src[-1] == "":
        src = src[:-1]
    assert len(src) == 30522 and src[1996] == "the", "unexpected MiniLM vocab.txt"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    singles = src[999:1996]
    conts = [t for t in src if t.startswith("##") and len(t) == 3]
    rest = [t for t in src[1996:] if not (t.startswith("##") and len(t) == 3)]
    vocab = specials + singles + conts + rest[:1000]
    assert len(set(vocab)) == len(vocab)
    return vocab


def wordpiece_tokenizer_config(tokenizer_class: str) -> dict:
    """tokenizer_config.json of the tiny WordPiece (vocab.txt) models."""
    return {
        "tokenizer_class": tokenizer_class,
        "do_lower_case": True,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "model_max_length": 512,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }


def angle_tokenizer_config(tokenizer_class: str, unk: str = "<unk>", **extra) -> dict:
    """tokenizer_config.json of the tiny models with RoBERTa's special tokens (<s>, </s>,
    <pad>, <mask>; `unk` for the unknown token), `extra` settings after the class."""
    return {"tokenizer_class": tokenizer_class, **extra, "model_max_length": 512, "bos_token": "<s>",
            "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": unk, "pad_token": "<pad>",
            "mask_token": "<mask>"}


def build_tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    if (MINILM_DIR / "vocab.txt").is_file():
        vocab = make_tiny_bert_vocab(MINILM_DIR / "vocab.txt")
    else:  # --skip-minilm without the fetched model: reuse the committed vocab
        vocab = (FIXTURES / "tiny-bert-st" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    cfg = BertConfig(vocab_size=len(vocab), **TINY_SIZES, max_position_embeddings=512, type_vocab_size=2,
                     layer_norm_eps=1e-12, pad_token_id=0, **THREE_LABELS)
    torch.manual_seed(SEED_BERT)
    model = BertForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_BERT)
    tok_config = wordpiece_tokenizer_config("BertTokenizer")
    files = {"vocab.txt": "\n".join(vocab) + "\n", "tokenizer_config.json": tok_config}
    save_pair(model, FIXTURES / "tiny-bert-st", FIXTURES / "tiny-bert-pt", files)


def build_tiny_distilbert():
    """A DistilBERT classifier with the tiny BERT vocabulary (WordPiece, vocab.txt)."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    vocab = (FIXTURES / "tiny-bert-st" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    cfg = DistilBertConfig(
        vocab_size=len(vocab),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        activation="gelu",
        max_position_embeddings=512,
        sinusoidal_pos_embds=False,
        pad_token_id=0,
        **THREE_LABELS,
    )
    torch.manual_seed(SEED_DISTILBERT)
    model = DistilBertForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_DISTILBERT)
    tok_config = wordpiece_tokenizer_config("DistilBertTokenizer")
    files = {"vocab.txt": "\n".join(vocab) + "\n", "tokenizer_config.json": tok_config}
    save_pair(model, FIXTURES / "tiny-distilbert-st", FIXTURES / "tiny-distilbert-pt", files)


def electra_config(vocab_size: int, **kw):
    from transformers import ElectraConfig

    return ElectraConfig(vocab_size=vocab_size, embedding_size=16, **TINY_SIZES, max_position_embeddings=512,
                         type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0, **kw)


def build_tiny_electra():
    """ELECTRA with the tiny BERT vocabulary (WordPiece, vocab.txt) and embeddings
    narrower than the encoder, so the embedding projection is exercised: a sequence
    classifier (safetensors and .bin) and a discriminator (safetensors)."""
    from transformers import ElectraForPreTraining, ElectraForSequenceClassification

    vocab = (FIXTURES / "tiny-bert-st" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    tok_config = wordpiece_tokenizer_config("ElectraTokenizer")
    files = {"vocab.txt": "\n".join(vocab) + "\n", "tokenizer_config.json": tok_config}
    cfg = electra_config(len(vocab), **THREE_LABELS)
    torch.manual_seed(SEED_ELECTRA)
    model = ElectraForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_ELECTRA)
    save_pair(model, FIXTURES / "tiny-electra-st", FIXTURES / "tiny-electra-pt", files)
    torch.manual_seed(SEED_ELECTRA_DISC)
    disc = ElectraForPreTraining(electra_config(len(vocab))).eval()
    randomize_all(disc, SEED_ELECTRA_DISC)
    save_pair(disc, FIXTURES / "tiny-electra-disc-st", None, files)


def build_tiny_mpnet():
    """An MPNet classifier: the tiny BERT vocabulary with MPNet's special tokens in the
    first five ids (<s> 0, <pad> 1, </s> 2, [UNK] 3, <mask> 4), as an MPNet fast
    tokenizer's tokenizer.json; relative attention bias over 32 buckets."""
    import tempfile

    from transformers import MPNetConfig, MPNetForSequenceClassification, MPNetTokenizerFast

    vocab = (FIXTURES / "tiny-bert-st" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"] + vocab[5:]
    with tempfile.TemporaryDirectory() as tmp:
        tok = MPNetTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=512)
        tok.save_pretrained(tmp)
        tokenizer_json = json.loads((Path(tmp) / "tokenizer.json").read_text(encoding="utf-8"))
    assert len(tok) == len(vocab), "every special token is in the vocabulary"
    cfg = MPNetConfig(vocab_size=len(vocab), **TINY_SIZES, max_position_embeddings=514,
                      relative_attention_num_buckets=32, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2, **THREE_LABELS)
    torch.manual_seed(SEED_MPNET)
    model = MPNetForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_MPNET)
    tok_config = angle_tokenizer_config("MPNetTokenizer", unk="[UNK]", do_lower_case=True)
    files = {"tokenizer.json": tokenizer_json, "tokenizer_config.json": tok_config}
    save_pair(model, FIXTURES / "tiny-mpnet-st", FIXTURES / "tiny-mpnet-pt", files)


def train_roberta_tokenizer(texts: list[str]):
    """Byte-level BPE (vocab 1,000) trained on SST-2 train rows, RoBERTa special tokens
    and post-processor: `<s> A </s>` and `<s> A </s></s> B </s>`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", AddedToken("<mask>", lstrip=True)],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer)
    ids = {t: tk.token_to_id(t) for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}, ids
    tk.post_processor = processors.RobertaProcessing(
        ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=True, add_prefix_space=False
    )
    return tk


def train_unigram_tokenizer(texts: list[str]):
    """A SentencePiece-style Unigram vocabulary (1,000 pieces, Metaspace, NFKC) trained on
    SST-2 train rows, with XLM-RoBERTa's special tokens and post-processor:
    `<s> A </s>` and `<s> A </s></s> B </s>`, all type ids 0."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC(),
                                          normalizers.Replace(" {2,}", " ")])
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=1000,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", AddedToken("<mask>", lstrip=True)],
        unk_token="<unk>",
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer)
    ids = {t: tk.token_to_id(t) for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}, ids
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tk


def build_tiny_xlmr(data: Path):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tk = train_unigram_tokenizer(read_sst2(data, "train")[:2000])
    cfg = XLMRobertaConfig(
        vocab_size=tk.get_vocab_size(), **TINY_SIZES, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=2,
    )
    torch.manual_seed(SEED_XLMR)
    model = XLMRobertaForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_XLMR)
    tok_config = angle_tokenizer_config("XLMRobertaTokenizer")
    files = {"tokenizer.json": tk.to_str(pretty=True), "tokenizer_config.json": tok_config}
    save_pair(model, FIXTURES / "tiny-xlmr-st", FIXTURES / "tiny-xlmr-pt", files)


def build_tiny_roberta(data: Path):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    train = read_sst2(data, "train")[:2000]
    tk = train_roberta_tokenizer(train)
    cfg = RobertaConfig(
        vocab_size=tk.get_vocab_size(),
        **TINY_SIZES,
        max_position_embeddings=514,
        type_vocab_size=1,
        # RoBERTa checkpoints use 1e-5 (BERT's default is 1e-12): the runtime must
        # read eps from config.json.
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=2,
    )
    torch.manual_seed(SEED_ROBERTA)
    model = RobertaForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_ROBERTA)
    tok_config = angle_tokenizer_config("RobertaTokenizer", add_prefix_space=False, trim_offsets=True)
    files = {"tokenizer.json": tk.to_str(pretty=True), "tokenizer_config.json": tok_config}
    save_pair(model, FIXTURES / "tiny-roberta-st", FIXTURES / "tiny-roberta-pt", files)


MODERNBERT_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]


def train_modernbert_tokenizer(texts: list[str]):
    """Byte-level BPE (vocab 1,000) trained on SST-2 train rows, with ModernBERT's special
    tokens (in its order, at ids 0-4: [UNK] [CLS] [SEP] [PAD] [MASK], mask lstrip) and its
    template post-processor: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, type ids 0 for
    the first segment and 1 for the second (ModernBERT itself ignores them)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        min_frequency=2,
        special_tokens=MODERNBERT_SPECIALS[:4] + [AddedToken("[MASK]", lstrip=True)],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer)
    ids = [tk.token_to_id(t) for t in MODERNBERT_SPECIALS]
    assert ids == [0, 1, 2, 3, 4], ids
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    return tk


def modernbert_config(vocab_size: int, **kw):
    """ModernBERT-base's settings at tiny size: 4 layers (full attention every
    `global_attn_every_n_layers`, else a window of `local_attention` tokens), GeGLU
    FFN 64 (Wi is [128, 32]), RoPE thetas 160,000 (global) and 10,000 (local); `kw`
    overrides the bias and pooling switches."""
    from transformers import ModernBertConfig

    base = dict(global_attn_every_n_layers=3, local_attention=16, norm_bias=False, attention_bias=False,
                mlp_bias=False, classifier_bias=False, classifier_pooling="mean")
    return ModernBertConfig(
        vocab_size=vocab_size, hidden_size=32, num_attention_heads=4, num_hidden_layers=4, intermediate_size=64,
        hidden_activation="gelu", classifier_activation="gelu", max_position_embeddings=512,
        global_rope_theta=160000.0, local_rope_theta=10000.0, norm_eps=1e-5, unk_token_id=0, cls_token_id=1,
        sep_token_id=2, pad_token_id=3, mask_token_id=4, bos_token_id=1, eos_token_id=2, **THREE_LABELS,
        **{**base, **kw},
    )


def build_tiny_modernbert(data: Path):
    """ModernBERT classifiers (RoPE, global and sliding-window layers, GeGLU) with a
    byte-level BPE tokenizer.json: tiny-modernbert (ModernBERT-base's switches: no biases,
    here mean pooling; safetensors and .bin) and tiny-modernbert-bias (every optional bias
    on, [CLS] pooling, global every 2nd layer, window 8; safetensors), so each switch is
    exercised both ways."""
    from transformers import ModernBertForSequenceClassification

    tk = train_modernbert_tokenizer(read_sst2(data, "train")[:4000])
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
                  "model_input_names": ["input_ids", "attention_mask"], "clean_up_tokenization_spaces": True,
                  "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "mask_token": "[MASK]"}
    files = {"tokenizer.json": tk.to_str(pretty=True), "tokenizer_config.json": tok_config}
    torch.manual_seed(SEED_MODERNBERT)
    model = ModernBertForSequenceClassification(modernbert_config(tk.get_vocab_size())).eval()
    randomize_all(model, SEED_MODERNBERT)
    save_pair(model, FIXTURES / "tiny-modernbert-st", FIXTURES / "tiny-modernbert-pt", files)
    cfg = modernbert_config(tk.get_vocab_size(), global_attn_every_n_layers=2, local_attention=8, norm_bias=True,
                            attention_bias=True, mlp_bias=True, classifier_bias=True, classifier_pooling="cls")
    torch.manual_seed(SEED_MODERNBERT_BIAS)
    model = ModernBertForSequenceClassification(cfg).eval()
    randomize_all(model, SEED_MODERNBERT_BIAS)
    save_pair(model, FIXTURES / "tiny-modernbert-bias-st", None, files)


DEBERTA_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def train_deberta_tokenizer(texts: list[str]) -> str:
    """A SentencePiece-style Unigram vocabulary (1,000 pieces) trained on SST-2 train rows,
    with DeBERTa-v2/v3's special tokens at ids 0-4 ([PAD] [CLS] [SEP] [UNK] [MASK]), as
    the tokenizer.json of transformers' DebertaV2Tokenizer (no lower-casing): normalizer
    whitespace runs, tabs and newlines -> " ", NFC, strip on the right; Metaspace (prefix
    always); template `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, type ids 0 for the
    first segment and 1 for the second.

    The Unigram trainer is not repeatable: its scores differ in their last bits from run
    to run (sums in hash-map order), and the characters it must keep but did not learn
    get the lowest score plus 1e-4 steps in hash-set order. So the scores are rounded to
    6 decimals, every single character within 0.05 of the lowest score gets the lowest
    score, and the pieces are sorted by (score, piece): the file is the same on every
    run."""
    import tempfile

    from tokenizers import Tokenizer, models, trainers
    from transformers import DebertaV2Tokenizer

    # The trainer splits its text as DebertaV2Tokenizer's pipeline does, so the pieces fit.
    template = DebertaV2Tokenizer(vocab=[(t, 0.0) for t in DEBERTA_SPECIALS] + [("\u2581", -1.0)])
    tk = Tokenizer(models.Unigram())
    tk.normalizer = template.backend_tokenizer.normalizer
    tk.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    # SST-2 is lower-cased: capitals (and digits) enter as single-character pieces, so
    # mixed-case text is not all [UNK].
    alphabet = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [str(d) for d in range(10)]
    trainer = trainers.UnigramTrainer(vocab_size=1000, special_tokens=DEBERTA_SPECIALS, unk_token="[UNK]",
                                      initial_alphabet=alphabet, show_progress=False)
    tk.train_from_iterator(texts, trainer)
    trained = json.loads(tk.to_str())["model"]["vocab"]
    specials = [(t, 0.0) for t in DEBERTA_SPECIALS]
    low = min(s for _, s in trained)

    def canon(piece: str, score: float) -> float:
        return round(low, 6) if len(piece) == 1 and score < low + 0.05 else round(score, 6)

    rest = sorted(((p, canon(p, s)) for p, s in trained if p not in DEBERTA_SPECIALS), key=lambda x: (-x[1], x[0]))
    vocab = specials + rest
    assert len(vocab) == len(trained) == 1000, len(trained)
    tok = DebertaV2Tokenizer(vocab=vocab, do_lower_case=False, split_by_punct=False, model_max_length=512)
    assert [tok.convert_tokens_to_ids(t) for t in DEBERTA_SPECIALS] == [0, 1, 2, 3, 4]
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        return (Path(tmp) / "tokenizer.json").read_text(encoding="utf-8")


def deberta_tokenizer_config() -> dict:
    """tokenizer_config.json of the tiny DeBERTa models: DeBERTa-v3's own settings."""
    return {"tokenizer_class": "DebertaV2Tokenizer", "model_max_length": 512, "do_lower_case": False,
            "split_by_punct": False, "vocab_type": "spm", "bos_token": "[CLS]", "eos_token": "[SEP]",
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]"}


def randomize_deberta(model, seed: int) -> None:
    """randomize_all, then the attention's weight matrices (query, key, value, the
    position projections, the output dense) times 3, to N(0, 0.3^2), and the
    relative-position embeddings ~ N(0, 1). At randomize_all's 0.1 the attention is near
    uniform and adds little to the residual stream, so the disentangled (c2p, p2c) terms
    would move the outputs by a few hundredths only; here they move the hidden states
    by about 0.2-0.6 on average and the logits by a large share of their size."""
    randomize_all(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rel_emb = model.deberta.encoder.rel_embeddings.weight
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ".attention." in name and name.endswith(("proj.weight", "output.dense.weight")):
                p.mul_(3.0)
        rel_emb.copy_(torch.randn(rel_emb.shape, generator=gen, dtype=torch.float32))


def build_tiny_deberta(data: Path):
    """DeBERTa classifiers (disentangled attention, ContextPooler head) with a
    SentencePiece-style Unigram tokenizer.json:

    tiny-deberta (DeBERTa-v3's switches: share_att_key, log-bucketed relative positions
    (16 buckets, max 64), the relative embeddings layer-normed, no absolute positions, no
    token types; 3 layers, 4 heads of 8; safetensors and .bin) and tiny-deberta-v2
    (DeBERTa-v2-style: separate pos_key_proj / pos_query_proj, no buckets, relative
    distances clamped at 24, raw relative embeddings, absolute positions added to the
    input, 2 token types; pos_att_type written as the string "p2c|c2p"; 2 layers, 2 heads
    of 16; safetensors), so each switch is exercised both ways."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer_json = train_deberta_tokenizer(read_sst2(data, "train")[:4000])
    vocab_size = len(json.loads(tokenizer_json)["model"]["vocab"])
    files = {"tokenizer.json": tokenizer_json, "tokenizer_config.json": deberta_tokenizer_config()}
    common = dict(vocab_size=vocab_size, hidden_size=32, hidden_act="gelu", max_position_embeddings=512,
                  layer_norm_eps=1e-7, relative_attention=True, pooler_hidden_act="gelu", pooler_hidden_size=32,
                  pooler_dropout=0.0, pad_token_id=0)
    cfg = DebertaV2Config(
        **common, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, type_vocab_size=0,
        position_biased_input=False, share_att_key=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
        max_relative_positions=64, norm_rel_ebd="layer_norm", **THREE_LABELS,
    )
    torch.manual_seed(SEED_DEBERTA)
    model = DebertaV2ForSequenceClassification(cfg).eval()
    randomize_deberta(model, SEED_DEBERTA)
    save_pair(model, FIXTURES / "tiny-deberta-st", FIXTURES / "tiny-deberta-pt", files)

    cfg = DebertaV2Config(
        **common, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, type_vocab_size=2,
        position_biased_input=True, share_att_key=False, pos_att_type="p2c|c2p", position_buckets=-1,
        max_relative_positions=24, norm_rel_ebd="none", num_labels=2,
    )
    torch.manual_seed(SEED_DEBERTA_V2)
    model = DebertaV2ForSequenceClassification(cfg).eval()
    randomize_deberta(model, SEED_DEBERTA_V2)
    names = dict(model.named_parameters())
    assert "deberta.encoder.layer.0.attention.self.pos_key_proj.weight" in names
    assert "deberta.encoder.layer.0.attention.self.pos_query_proj.weight" in names
    assert "deberta.encoder.LayerNorm.weight" not in names
    d = FIXTURES / "tiny-deberta-v2-st"
    save_pair(model, d, None, files)
    # DebertaV2Config turns the string into ["p2c", "c2p"] and saves the list; DeBERTa-v2
    # and v3 checkpoints on the Hub write the string, which transformers reads back.
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    assert config["pos_att_type"] == ["p2c", "c2p"], config["pos_att_type"]
    config["pos_att_type"] = "p2c|c2p"
    (d / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
