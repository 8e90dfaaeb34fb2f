"""A minimal ctypes binding of libtoprt.so (include/toprt.h), so bench/compare can time
toprt and ONNX Runtime in one process, call by call, on the same machine state.

Only what the comparison needs: open a model, create a session, run batches of token ids
(dense or pruned), read logits / embeddings for the correctness check. Every call checks
its status and raises with toprt_last_error()."""

import ctypes as C
from pathlib import Path

ABI_VERSION = 2
OUTPUT_LOGITS, OUTPUT_EMBEDDING = 1, 2
PRUNE_SESSION, PRUNE_ON, PRUNE_OFF = 0, 1, 2
INPUT_IDS = 3
ISA = {0: "auto", 1: "scalar", 2: "avx2", 3: "avx512"}
PRECISION = {1: "f32", 2: "bf16", 3: "int8"}


class ModelInfo(C.Structure):
    _fields_ = [("hidden_size", C.c_size_t), ("num_layers", C.c_size_t), ("num_heads", C.c_size_t),
                ("vocab_size", C.c_size_t), ("max_length", C.c_size_t), ("num_labels", C.c_size_t),
                ("num_keep_rules", C.c_size_t), ("has_tokenizer", C.c_int32), ("has_logits", C.c_int32),
                ("has_embedding", C.c_int32), ("precision", C.c_int32), ("num_f32_linears", C.c_size_t)]


class SessionOptions(C.Structure):
    _fields_ = [("threads", C.c_uint32), ("truncate", C.c_int32), ("max_tokens", C.c_size_t),
                ("max_length", C.c_size_t), ("prune_enabled", C.c_int32), ("keep_scale", C.c_float),
                ("isa", C.c_int32)]


class SessionInfo(C.Structure):
    _fields_ = [("threads", C.c_size_t), ("max_length", C.c_size_t), ("max_tokens", C.c_size_t),
                ("isa", C.c_int32), ("prune_enabled", C.c_int32), ("keep_scale", C.c_float),
                ("linear_precision", C.c_int32)]


class RunOptions(C.Structure):
    _fields_ = [("outputs", C.c_uint32), ("prune", C.c_int32), ("keep_scale", C.c_float)]


class Input(C.Structure):
    _fields_ = [("kind", C.c_uint32), ("text", C.c_char_p), ("text_len", C.c_size_t),
                ("text_pair", C.c_char_p), ("text_pair_len", C.c_size_t),
                ("input_ids", C.POINTER(C.c_uint32)), ("token_type_ids", C.POINTER(C.c_uint32)),
                ("num_ids", C.c_size_t)]


class Lib:
    def __init__(self, path: Path):
        if not path.is_file():
            raise SystemExit(f"error: {path} missing (run.sh builds it: cargo build --release -p toprt)")
        self.lib = lib = C.CDLL(str(path))
        lib.toprt_last_error.restype = C.c_char_p
        lib.toprt_version.restype = C.c_char_p
        lib.toprt_abi_version.restype = C.c_uint32
        if lib.toprt_abi_version() != ABI_VERSION:
            raise SystemExit(f"error: {path} has ABI {lib.toprt_abi_version()}, this binding speaks {ABI_VERSION}")
        self.version = lib.toprt_version().decode()

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"toprt {what}: status {status}: {self.lib.toprt_last_error().decode()}")

    def model(self, path: Path):
        return Model(self, path)


class Model:
    def __init__(self, lib: Lib, path: Path):
        self.lib = lib
        self.h = C.c_void_p()
        lib.check(lib.lib.toprt_model_open(str(path).encode(), C.byref(self.h)), f"model_open {path}")
        self.info = ModelInfo()
        lib.check(lib.lib.toprt_model_get_info(self.h, C.byref(self.info)), "model_get_info")

    def session(self, threads: int, max_tokens: int = 0):
        return Session(self, threads, max_tokens)

    def __del__(self):
        if getattr(self, "h", None):
            self.lib.lib.toprt_model_free(self.h)


class Batch:
    """Token-id rows as toprt_input structs, built once and reused by every run."""

    def __init__(self, rows):
        self.keep = [(C.c_uint32 * len(r))(*r) for r in rows]
        self.inputs = (Input * len(rows))()
        for i, ids in enumerate(self.keep):
            self.inputs[i].kind = INPUT_IDS
            self.inputs[i].text = b""
            self.inputs[i].text_pair = b""
            self.inputs[i].input_ids = ids
            self.inputs[i].token_type_ids = None
            self.inputs[i].num_ids = len(ids)
        self.n = len(rows)
        self.tokens = sum(len(r) for r in rows)


class Session:
    def __init__(self, model: Model, threads: int, max_tokens: int):
        self.model, self.lib = model, model.lib
        opts = SessionOptions()
        self.lib.check(self.lib.lib.toprt_session_options_init(C.byref(opts)), "session_options_init")
        opts.threads = threads
        opts.max_tokens = max_tokens
        self.h = C.c_void_p()
        self.lib.check(self.lib.lib.toprt_session_create(model.h, C.byref(opts), C.byref(self.h)), "session_create")
        info = SessionInfo()
        self.lib.check(self.lib.lib.toprt_session_get_info(self.h, C.byref(info)), "session_get_info")
        self.threads, self.isa = info.threads, ISA.get(info.isa, "?")
        self.linear_precision = PRECISION.get(info.linear_precision, "?")
        n = C.c_size_t()
        self.lib.check(self.lib.lib.toprt_session_kernel(self.h, None, 0, C.byref(n)), "session_kernel")
        buf = C.create_string_buffer(n.value)
        self.lib.check(self.lib.lib.toprt_session_kernel(self.h, buf, n, C.byref(n)), "session_kernel")
        self.kernel = buf.value.decode()

    def run(self, batch: Batch, pruned: bool, outputs: int = OUTPUT_LOGITS):
        """One forward pass over the batch; returns the result handle (free it)."""
        ro = RunOptions(outputs, PRUNE_ON if pruned else PRUNE_OFF, 1.0)
        res = C.c_void_p()
        self.lib.check(self.lib.lib.toprt_session_run(self.h, batch.inputs, batch.n, C.byref(ro), C.byref(res)),
                       "session_run")
        return res

    def time_run(self, batch: Batch, pruned: bool, outputs: int = OUTPUT_LOGITS):
        """Runs and frees the result (what a service does per request)."""
        self.lib.lib.toprt_result_free(self.run(batch, pruned, outputs))

    def floats(self, batch: Batch, pruned: bool, which: str):
        """The logits or embedding of every sequence, as lists of floats."""
        flag = OUTPUT_LOGITS if which == "logits" else OUTPUT_EMBEDDING
        getter = self.lib.lib.toprt_result_logits if which == "logits" else self.lib.lib.toprt_result_embedding
        res = self.run(batch, pruned, flag)
        try:
            out = []
            for i in range(batch.n):
                n = C.c_size_t()
                self.lib.check(getter(res, i, None, 0, C.byref(n)), f"result_{which} size")
                buf = (C.c_float * n.value)()
                self.lib.check(getter(res, i, buf, n.value, C.byref(n)), f"result_{which}")
                out.append(list(buf))
            return out
        finally:
            self.lib.lib.toprt_result_free(res)

    def __del__(self):
        if getattr(self, "h", None):
            self.lib.lib.toprt_session_free(self.h)
