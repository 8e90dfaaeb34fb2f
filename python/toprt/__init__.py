"""toprt: a CPU inference runtime for BERT-family encoders that makes token pruning real.

    import toprt
    m = toprt.Model("model.toprt")           # share it across threads
    m.encode(["a text", "another"])          # embeddings [n, dim]
    m.predict(["a review"])                  # classifier logits [n, num_labels]
    s = m.session(threads=1)                 # one per thread
    r = s.run(["a text", ("a question", "a passage"), [101, 7592, 102]])
    r.logits, r.embeddings, r.input_ids

Models come from ``toprt.convert`` (or the ``toprt-convert`` command); keep-rules and
int8 choices from ``python -m toprt calibrate``. See docs/PYTHON.md.
"""

import os

from ._errors import CommandError, ConvertError, Error, InputError, ModelError
from ._toprt import Model, Result, Session, __version__
from ._toprt import convert as _convert

__all__ = [
    "Model",
    "Session",
    "Result",
    "convert",
    "calibrate",
    "Error",
    "InputError",
    "ModelError",
    "ConvertError",
    "CommandError",
    "__version__",
]


def convert(checkpoint_dir, out, **options):
    """Converts a Hugging Face checkpoint folder into a ``.toprt`` file, as
    ``toprt-convert`` does, with the same options as keyword arguments:

    ``dtype`` ("f32", "bf16", "int8"), ``tokenizer`` (folder), ``no_tokenizer``,
    ``pooling`` ("mean", "cls", "pooler", "none"), ``force``, ``zs`` (ToP masks file),
    ``ltp_ref_len``, ``keep_ratio`` (a float or one per layer), ``keep_count``,
    ``prune_layers``.

    The file is written atomically (a failed conversion leaves none). Returns a dict:
    ``out``, ``bytes``, ``ignored_tensors``, ``weight_files``, ``tokenizer_source``,
    ``notes``. Raises :class:`ConvertError` naming the file, tensor or option at fault.
    """
    return _convert(os.fspath(checkpoint_dir), os.fspath(out), **options)


def calibrate(model, data, out, **options):
    """Runs ``toprt-calibrate MODEL --data DATA -o OUT`` in this process, with the options
    as keyword arguments (``target_mac_reduction=1.5``, ``dtype="int8"``, ``labels=True``,
    ``limit=512``, ``report="dir"``, ``force=True``, ...; see
    ``python -m toprt calibrate --help``). Progress goes to stderr. Raises
    :class:`CommandError` if the calibration fails (the message says why)."""
    from .__main__ import run_command

    args = [os.fspath(model), "--data", os.fspath(data), "-o", os.fspath(out)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            args += [flag, str(value)]
    run_command("calibrate", args, check=True)
    return os.fspath(out)
