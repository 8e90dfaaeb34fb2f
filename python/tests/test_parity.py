"""The Python results equal the Rust CLI's (`toprt run`) bit for bit: logits,
embeddings, token ids, final hidden states and kept positions."""

import json
import subprocess

import numpy as np
import pytest

import toprt
from conftest import require_binary


def cli_run(model, lines, *flags):
    """`toprt run` on JSONL `lines`; one dict per line."""
    src = "".join(json.dumps(line) + "\n" for line in lines)
    done = subprocess.run(
        [require_binary(), "run", "--model", model, "--input", "-", "--threads", "1", *flags],
        input=src.encode(),
        capture_output=True,
        check=True,
    )
    return [json.loads(l) for l in done.stdout.decode().splitlines()]


def as_cli_line(x):
    if isinstance(x, str):
        return {"text": x}
    if isinstance(x, tuple):
        return {"text": x[0], "text_pair": x[1]}
    return {"input_ids": [int(i) for i in x]}


def f32(values):
    """JSON numbers of f32 values back to the same f32 (the CLI prints the shortest
    decimal that reads back exactly)."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def mixed_inputs(texts):
    return texts[:40] + [(texts[40], texts[41]), ("what is it?", texts[42]), [101, 7592, 2088, 102]]


@pytest.mark.parametrize("name", ["classifier", "pruned_classifier", "minilm", "minilm_pruned", "discriminator"])
def test_run_matches_cli(models, dev_texts, name):
    path = models[name]
    inputs = mixed_inputs(dev_texts)
    if name.endswith("classifier") or name == "discriminator":
        inputs[-1] = [2, 17, 93, 3]  # ids inside the tiny vocabulary
    expected = cli_run(path, [as_cli_line(x) for x in inputs], "--kept", "--hidden-states")
    r = toprt.Model(path).session(threads=1).run(inputs, hidden_states=True, kept=True)
    assert len(r) == len(inputs) == len(expected)
    checked = 0
    for i, e in enumerate(expected):
        assert r.input_ids[i].dtype == np.int32
        assert r.input_ids[i].tolist() == e["input_ids"], i
        assert r.token_type_ids[i].tolist() == e["token_type_ids"], i
        if "logits" in e:
            assert np.array_equal(r.logits[i], f32(e["logits"])), i
            checked += 1
        if "embedding" in e:
            assert np.array_equal(r.embeddings[i], f32(e["embedding"])), i
            checked += 1
        assert np.array_equal(r.hidden_states[i], f32(e["last_hidden_state"])), i
        kept = {int(k): v for k, v in e.get("kept", {}).items()}
        assert {k: v.tolist() for k, v in r.kept[i].items()} == kept, i
    assert checked >= len(inputs)
    # The pruned models really prune, so the kept sets above compared something.
    if "pruned" in name:
        assert any(len(v) < len(r.input_ids[i]) for i in range(len(r)) for v in r.kept[i].values())
    if name == "discriminator":
        # One [len, 1] array per input: a logit per token.
        assert [a.shape for a in r.logits] == [(len(ids), 1) for ids in r.input_ids]
    elif "logits" in expected[0]:
        assert r.logits.shape == (len(inputs), len(expected[0]["logits"]))
    else:
        assert r.logits is None
    if "embedding" in expected[0]:
        assert r.embeddings.dtype == np.float32
    else:
        assert r.embeddings is None


def test_encode_and_predict_equal_run(models, dev_texts):
    emb_model = toprt.Model(models["minilm_pruned"], threads=1)
    run = emb_model.session(threads=1).run(dev_texts[:70])
    enc = emb_model.encode(dev_texts[:70], batch_size=16)
    assert enc.shape == (70, 384) and enc.dtype == np.float32
    assert np.array_equal(enc, run.embeddings)
    dense = emb_model.encode(dev_texts[:70], prune=False)
    assert not np.array_equal(dense, enc)
    assert np.array_equal(dense, emb_model.session(threads=1, prune=False).run(dev_texts[:70]).embeddings)

    clf = toprt.Model(models["pruned_classifier"], threads=1)
    logits = clf.predict(dev_texts[:50], batch_size=7)
    assert logits.shape == (50, clf.num_labels) and clf.num_labels == 2
    assert np.array_equal(logits, clf.session(threads=1).run(dev_texts[:50]).logits)
    assert clf.predict([]).shape == (0, 2)
    assert emb_model.encode([]).shape == (0, 384)


def test_numpy_ids_match_lists(models):
    m = toprt.Model(models["minilm"])
    s = m.session(threads=1)
    ids = [101, 7592, 2088, 2003, 1037, 3231, 102]
    want = s.run([ids]).embeddings
    for dtype in (np.int32, np.uint32, np.int64, np.uint16):
        arr = np.array(ids, dtype=dtype)
        assert np.array_equal(s.run([arr]).embeddings, want), dtype
    # Non-contiguous and 2-D batches.
    strided = np.array([[i, 0] for i in ids], dtype=np.int32)[:, 0]
    assert not strided.flags["C_CONTIGUOUS"]
    assert np.array_equal(s.run([strided]).embeddings, want)
    batch = np.array([ids, ids], dtype=np.uint32)
    assert np.array_equal(s.run(batch).embeddings, np.vstack([want, want]))
    assert np.array_equal(s.run(batch.astype(np.int64)).embeddings, np.vstack([want, want]))
    typed = s.run([{"input_ids": np.array(ids), "token_type_ids": [0] * len(ids)}])
    assert np.array_equal(typed.embeddings, want)


def test_model_from_bytes_and_properties(models):
    path = models["pruned_classifier"]
    with open(path, "rb") as f:
        data = f.read()
    a, b = toprt.Model(path), toprt.Model.from_bytes(data)
    mapped = toprt.Model(path, copy_to_memory=False)
    assert a.path == path and b.path is None and mapped.path == path
    texts = ["a fine film", "dull and long"]
    assert np.array_equal(a.predict(texts), b.predict(texts))
    # Copied into memory (the default) or run from the file's mapping: the same model.
    assert np.array_equal(a.predict(texts), mapped.predict(texts))
    assert a.task == "classification" and a.num_labels == 2
    assert a.precision == "f32" and a.has_tokenizer and len(a.keep_rules) > 0
    assert a.manifest["head"]["num_labels"] == 2
    assert "pruned-classifier.toprt" in repr(a)
    c = toprt.Model(models["classifier"])
    assert (c.num_labels, c.labels, c.keep_rules) == (3, ["neg", "neu", "pos"], [])
    m = toprt.Model(models["minilm"])
    assert (m.task, m.pooling, m.hidden_size, m.num_labels) == ("embedding", "mean", 384, 0)
    m_mapped = toprt.Model(models["minilm"], copy_to_memory=False)
    assert np.array_equal(m.encode(texts), m_mapped.encode(texts))


def test_token_classifier_predict_and_ray_predictor(models, dev_texts):
    """A token classifier: predict() gives one float32 [len, 1] array per text, equal to
    Session.run's; toprt.ray.Predictor (called directly, as Ray's actors do) adds them
    as a ragged object column and keeps the other columns."""
    import toprt.ray

    m = toprt.Model(models["discriminator"], threads=1)
    assert (m.task, m.num_labels) == ("token_classification", 1)
    texts = dev_texts[:37]
    got = m.predict(texts, batch_size=8)
    ref = m.session(threads=1).run(texts)
    assert len(got) == len(texts)
    for a, b, ids in zip(got, ref.logits, ref.input_ids):
        assert a.dtype == np.float32 and a.shape == (len(ids), 1)
        assert np.array_equal(a, b)
    p = toprt.ray.Predictor(model=models["discriminator"])
    out = p({"text": np.array(texts[:5], dtype=object), "id": np.arange(5)})
    assert out["id"].tolist() == list(range(5))
    assert out["logits"].dtype == object and len(out["logits"]) == 5
    for a, b in zip(out["logits"], got[:5]):
        assert np.array_equal(a, b)
    empty = p({"text": np.array([], dtype=object)})
    assert len(empty["logits"]) == 0
    with pytest.raises(toprt.InputError):
        m.encode(texts[:2])
