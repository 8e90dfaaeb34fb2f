"""Type stubs of the native module (python/src/, PyO3)."""

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

TokenIds = Union[Sequence[int], npt.NDArray[np.integer]]
InputItem = Union[str, Tuple[str, str], TokenIds, Dict[str, TokenIds]]
Batch = Union[Iterable[InputItem], npt.NDArray[np.integer]]

class Result:
    """The result of Session.run: one entry per input, in input order."""

    logits: Union[npt.NDArray[np.float32], List[npt.NDArray[np.float32]], None]
    """float32 [n, num_labels] for classifiers; for a token classifier (task
    "token_classification", ELECTRA's discriminator) a list of float32 [len, num_labels],
    one per input; else None."""
    embeddings: Optional[npt.NDArray[np.float32]]
    """float32 [n, dim] for models with a pooling, else None."""
    input_ids: List[npt.NDArray[np.int32]]
    token_type_ids: List[npt.NDArray[np.int32]]
    truncated: List[bool]
    hidden_states: Optional[List[npt.NDArray[np.float32]]]
    """Per input, float32 [len, hidden] final token states (hidden_states=True)."""
    kept: Optional[List[Dict[int, npt.NDArray[np.int32]]]]
    """Per input, {prune location: kept original positions} (kept=True)."""
    def __len__(self) -> int: ...

class Session:
    """A model ready to run, with its own threads and workspace; one per thread."""

    @property
    def threads(self) -> int: ...
    @property
    def isa(self) -> str: ...
    @property
    def linear_kernel(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def prune(self) -> bool: ...
    @property
    def keep_scale(self) -> float: ...
    def run(
        self,
        inputs: Batch,
        hidden_states: bool = False,
        kept: bool = False,
        *,
        prune: Optional[bool] = None,
        keep_scale: Optional[float] = None,
    ) -> Result: ...

class Model:
    """An opened, validated .toprt file (copied into memory unless copy_to_memory=False); share it across threads."""

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        threads: int = 0,
        verify_checksums: bool = True,
        copy_to_memory: bool = True,
    ) -> None: ...
    @staticmethod
    def from_bytes(
        data: Union[bytes, bytearray, memoryview], *, threads: int = 0, verify_checksums: bool = True
    ) -> "Model": ...
    def session(
        self,
        threads: int = 1,
        prune: bool = True,
        keep_scale: float = 1.0,
        max_length: Optional[int] = None,
        *,
        truncate: bool = True,
        max_tokens: int = 2048,
        isa: Optional[str] = None,
    ) -> Session: ...
    def encode(
        self, texts: Batch, batch_size: int = 32, *, prune: bool = True, keep_scale: float = 1.0
    ) -> npt.NDArray[np.float32]: ...
    def predict(
        self, texts: Batch, batch_size: int = 32, *, prune: bool = True, keep_scale: float = 1.0
    ) -> Union[npt.NDArray[np.float32], List[npt.NDArray[np.float32]]]: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def task(self) -> str: ...
    @property
    def pooling(self) -> str: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def labels(self) -> List[str]: ...
    @property
    def precision(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def has_tokenizer(self) -> bool: ...
    @property
    def keep_rules(self) -> List[Dict[str, Any]]: ...
    @property
    def manifest(self) -> Dict[str, Any]: ...

def convert(
    checkpoint_dir: Union[str, os.PathLike[str]],
    out: Union[str, os.PathLike[str]],
    *,
    dtype: str = "f32",
    tokenizer: Optional[Union[str, os.PathLike[str]]] = None,
    no_tokenizer: bool = False,
    pooling: Optional[str] = None,
    force: bool = False,
    zs: Optional[Union[str, os.PathLike[str]]] = None,
    ltp_ref_len: Optional[int] = None,
    keep_ratio: Optional[Union[float, Sequence[float]]] = None,
    keep_count: Optional[Union[int, Sequence[int]]] = None,
    prune_layers: Optional[Union[int, Sequence[int]]] = None,
) -> Dict[str, Any]: ...
def _command(name: str, args: List[str]) -> int: ...
