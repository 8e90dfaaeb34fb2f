"""Bad input is a toprt.Error (bad input an InputError, also a ValueError), never a
crash; the model and session stay usable after each."""

import numpy as np
import pytest

import toprt


@pytest.fixture(scope="module")
def session(models):
    return toprt.Model(models["classifier"]).session(threads=1)


BAD_BATCHES = [
    (None, "got None"),
    ("a bare string", "wrap a single text in a list"),
    (42, "expected a list of inputs"),
    ([], "empty batch"),
    ([None], "input 0: got None"),
    (["ok", 17], "input 1: got int"),
    (["ok", b"bytes"], "input 1: got bytes"),
    ([("only one",)], "tuple must be (text, text_pair)"),
    ([("a", 3)], "expected str, got int"),
    ([[2, 99999999, 3]], "outside the vocabulary"),
    ([[2, -1, 3]], "not a valid id"),
    ([[2, 2**40, 3]], "not a valid id"),
    ([[2, 1.5, 3]], "must be an int"),
    ([[2, True, 3]], "is a bool"),
    ([[]], "empty sequence"),
    ([np.array([2.0, 5.0, 3.0])], "must be an integer array"),
    ([np.array([True, False])], "must be an integer array"),
    ([np.array([[2, 5, 3]])], "must be 1-D"),
    ([np.array([2, -5, 3], dtype=np.int32)], "negative"),
    ([np.array([2, -5, 3], dtype=np.int64)], "not a valid id"),
    (np.zeros((2, 0), dtype=np.int32), "empty sequence"),
    (np.zeros((2, 3), dtype=np.float32), "must be an integer array"),
    ([{"token_type_ids": [0]}], "needs 'input_ids'"),
    ([{"input_ids": [2, 5, 3], "token_type_ids": [0, 0]}], "token_type_ids"),
    ([{"input_ids": [2, 5, 3], "token_type_ids": [0, 7, 0]}], "token type id"),
]


@pytest.mark.parametrize("batch,message", BAD_BATCHES, ids=[m for _, m in BAD_BATCHES])
def test_bad_batch(session, batch, message):
    with pytest.raises(toprt.InputError) as e:
        session.run(batch)
    assert isinstance(e.value, ValueError) and isinstance(e.value, toprt.Error)
    assert message in str(e.value)
    # Still usable.
    assert session.run(["still fine"]).logits.shape == (1, 3)


def test_bad_options(models):
    m = toprt.Model(models["classifier"])
    for kwargs, message in [
        ({"keep_scale": 0.0}, "keep_scale"),
        ({"keep_scale": float("nan")}, "keep_scale"),
        ({"threads": 100000}, "threads"),
        ({"max_length": 0}, "max_length"),
        ({"isa": "nonsense"}, "isa"),
    ]:
        with pytest.raises(toprt.InputError, match=message):
            m.session(**kwargs)
    with pytest.raises(toprt.InputError, match="use predict"):
        m.encode(["text"])
    with pytest.raises(toprt.InputError, match="batch_size"):
        m.predict(["text"], batch_size=0)
    with pytest.raises(toprt.InputError, match="input 9"):
        m.predict(["x"] * 9 + [None], batch_size=4)
    with pytest.raises(toprt.InputError, match="threads must be non-negative"):
        m.session(threads=-1)
    with pytest.raises(toprt.InputError, match="batch_size"):
        m.predict(["text"], batch_size=-3)
    with pytest.raises(TypeError):
        m.session(threads="two")
    with pytest.raises(toprt.InputError, match="not a classifier"):
        toprt.Model(models["minilm"]).predict(["text"])
    with pytest.raises(toprt.InputError, match="no tokenizer"):
        toprt.Model(models["no_tokenizer"]).session().run(["text"])
    too_long = m.session(max_length=8, truncate=False)
    with pytest.raises(toprt.InputError, match="exceeds the maximum length"):
        too_long.run(["one two three four five six seven eight nine ten"])
    r = m.session(max_length=8).run(["one two three four five six seven eight nine ten"])
    assert r.truncated == [True] and len(r.input_ids[0]) == 8


def test_bad_files(models, tmp_path):
    with pytest.raises(toprt.ModelError, match="No such file"):
        toprt.Model(tmp_path / "missing.toprt")
    data = bytearray(open(models["classifier"], "rb").read())
    data[len(data) // 2] ^= 0x40
    corrupt = tmp_path / "corrupt.toprt"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(toprt.ModelError, match="checksum"):
        toprt.Model(corrupt)
    with pytest.raises(toprt.ModelError, match="checksum"):
        toprt.Model.from_bytes(bytes(data))
    with pytest.raises(toprt.ModelError):
        toprt.Model.from_bytes(b"not a model")
    with pytest.raises(toprt.InputError):
        toprt.Model.from_bytes(12)
    truncated = tmp_path / "truncated.toprt"
    truncated.write_bytes(bytes(data[:1000]))
    with pytest.raises(toprt.ModelError):
        toprt.Model(truncated)


def test_convert_errors(tmp_path, models):
    with pytest.raises(toprt.ConvertError, match="config.json"):
        toprt.convert(tmp_path, tmp_path / "out.toprt")
    with pytest.raises(toprt.ConvertError, match="exists"):
        toprt.convert(tmp_path, models["classifier"])
    with pytest.raises(toprt.ConvertError, match="dtype|precision"):
        toprt.convert(tmp_path, tmp_path / "out.toprt", dtype="f64")
    with pytest.raises(TypeError):
        toprt.convert(tmp_path, tmp_path / "out.toprt", no_such_option=1)
    assert not (tmp_path / "out.toprt").exists()
