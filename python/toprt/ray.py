"""Scale-out on Ray Data: one model per actor, numpy batches.

    import ray, toprt.ray
    ds = ray.data.read_json("texts.jsonl")
    out = ds.map_batches(
        toprt.ray.Predictor,
        fn_constructor_kwargs={"model": "/shared/model.toprt", "threads": 1},
        concurrency=4, num_cpus=1, batch_size=64, batch_format="numpy",
    )

The model reaches the workers as a path on a filesystem every node sees, or as the
file's bytes (``model=open(path, "rb").read()``, or an ``ObjectRef`` of them from
``ray.put``), which Ray ships through its object store. Ray is imported only by the
code that needs it; this module itself needs numpy only.
"""

import os

import numpy as np

from ._errors import InputError
from ._toprt import Model

__all__ = ["Predictor"]


def _open(model, threads):
    if isinstance(model, Model):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return Model.from_bytes(bytes(model), threads=threads)
    if isinstance(model, (str, os.PathLike)):
        return Model(os.fspath(model), threads=threads)
    try:  # an ObjectRef of the bytes, from ray.put
        import ray

        if isinstance(model, ray.ObjectRef):
            return _open(ray.get(model), threads)
    except ImportError:
        pass
    raise InputError(f"model must be a path, the bytes of a .toprt file or an ObjectRef of them, got {type(model).__name__}")


class Predictor:
    """A callable class for ``Dataset.map_batches``: reads the ``text`` column (and
    ``text_pair`` when the batch has it), adds ``logits`` (classifiers) and/or
    ``embedding`` (models with a pooling) as 2-D float32 columns (a token classifier's
    ``logits``: one float32 ``[len, num_labels]`` array per row), and keeps every other
    column as it came.

    Arguments: ``model`` (path, bytes or ObjectRef of bytes), ``threads`` (per actor,
    default 1: give each actor ``num_cpus=threads``), ``prune`` and ``keep_scale`` (the
    pruning dial), ``max_length``, ``text_column`` / ``text_pair_column`` (column names),
    ``outputs`` (which of "logits" and "embedding" to add; default: what the model gives).
    A bad row (a missing text, a non-string) raises ``toprt.InputError`` naming it, so
    the job fails loudly instead of dropping rows."""

    def __init__(
        self,
        model,
        threads=1,
        prune=True,
        keep_scale=1.0,
        max_length=None,
        text_column="text",
        text_pair_column="text_pair",
        outputs=None,
    ):
        self.model = _open(model, threads)
        self.session = self.model.session(threads=threads, prune=prune, keep_scale=keep_scale, max_length=max_length)
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        gives = []
        if self.model.task in ("classification", "token_classification"):
            gives.append("logits")
        if self.model.pooling != "none":
            gives.append("embedding")
        if outputs is None:
            outputs = gives
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        missing = [o for o in outputs if o not in gives]
        if missing or not outputs:
            raise InputError(f"outputs {outputs}: this model gives {gives or 'neither logits nor an embedding'}")
        self.outputs = outputs

    def inputs(self, batch):
        """The model inputs of a batch: texts, or (text, text_pair) tuples."""
        if self.text_column not in batch:
            raise InputError(f"batch has no '{self.text_column}' column (columns: {', '.join(batch)})")
        texts = batch[self.text_column]
        pairs = batch.get(self.text_pair_column)
        if pairs is None:
            return list(texts)
        return [(t, p) if p is not None else t for t, p in zip(texts, pairs)]

    def __call__(self, batch):
        batch = dict(batch)
        if len(batch.get(self.text_column, ())) == 0:
            for name in self.outputs:
                if name == "logits" and self.model.task == "token_classification":
                    batch[name] = np.empty((0,), dtype=object)
                    continue
                width = self.model.num_labels if name == "logits" else self.model.hidden_size
                batch[name] = np.zeros((0, width), dtype=np.float32)
            return batch
        result = self.session.run(self.inputs(batch))
        if "logits" in self.outputs:
            logits = result.logits
            if isinstance(logits, list):
                # A token classifier: one [len, num_labels] array per row, a ragged column.
                ragged = np.empty((len(logits),), dtype=object)
                ragged[:] = logits
                logits = ragged
            batch["logits"] = logits
        if "embedding" in self.outputs:
            batch["embedding"] = result.embeddings
        return batch
