#!/usr/bin/env python3
"""Generate the tiny torch.save fixtures used by the Rust torch reader tests.

Usage: python3 scripts/make_torch_fixtures.py [OUT_DIR]
(default OUT_DIR: tests/fixtures/torch relative to the repository root).

All values are deterministic (arange based) so the Rust tests can assert
exact numbers; keep every file well under 20 KB.

Files:
  f32_views.pt   OrderedDict of float32 tensors: Parameters, a Parameter with
                 python state, a tensor with python state
                 (_rebuild_from_type_v2), a transposed (non-contiguous) view,
                 a strided view, views sharing one storage with an offset, and
                 the same tensor object under two names (memoized, tied).
  dtypes.pt      fp16, bf16, f64, int64, int32, int16, int8, uint8, bool,
                 a 0-dim scalar and an empty tensor.
  nested.pt      {"state_dict": <nn.Module state_dict with _metadata>,
                  "epoch": 3, "lr": 0.5, "tag": "x", "aux": [tensor, 7]}.
  protocol4.pt   a dict saved with pickle_protocol=4 (FRAME, MEMOIZE,
                 SHORT_BINUNICODE, STACK_GLOBAL).
  zs_cuda.pt     ToP-style {"token_z": f32 [n, bin_num], "pruner_z": f32 [n]}
                 whose storage location strings were rewritten to "cuda:0"
                 (as in a file saved from CUDA tensors).
  legacy.pt      the pre-1.6 (non-zip) format, which must be refused.
"""

import collections
import io
import os
import sys
import zipfile

import torch


def arange(n, dtype=torch.float32):
    return torch.arange(n, dtype=torch.float64).to(dtype)


def f32_views():
    base = arange(12).reshape(3, 4)  # storage shared by several entries
    tied = arange(5) - 2.0
    sd = collections.OrderedDict()
    sd["linear.weight"] = torch.nn.Parameter(arange(6).reshape(2, 3) * 0.5)
    sd["linear.bias"] = torch.nn.Parameter(torch.tensor([-1.0, 1.0]), requires_grad=False)
    p = torch.nn.Parameter(arange(3) + 10.0)
    p.extra_state = "kept in python only"  # -> _rebuild_parameter_with_state
    sd["param_with_state"] = p
    t = arange(2) + 100.0
    t.note = 1  # -> torch._tensor._rebuild_from_type_v2
    sd["tensor_with_state"] = t
    sd["base"] = base
    sd["transposed"] = base.t()  # shape [4, 3], stride (1, 4)
    sd["row1"] = base[1]  # shape [4], storage offset 4
    sd["strided"] = base[:, ::2]  # shape [3, 2], stride (4, 2)
    sd["emb.weight"] = tied
    sd["lm_head.weight"] = tied  # same object: memoized BINGET in the pickle
    return sd


def dtypes():
    d = collections.OrderedDict()
    d["f16"] = (arange(6) * 0.25 - 0.5).to(torch.float16)
    d["bf16"] = (arange(6) * 1.5 - 2.0).to(torch.bfloat16)
    d["f64"] = arange(3, torch.float64) / 8.0
    d["i64"] = arange(4, torch.int64) * 1_000_000_000_000 - 5
    d["i32"] = arange(4, torch.int32) - 2
    d["i16"] = arange(3, torch.int16) * -300
    d["i8"] = arange(4, torch.int8) - 3
    d["u8"] = arange(4, torch.uint8) + 250
    d["bool"] = torch.tensor([True, False, True])
    d["scalar"] = torch.tensor(3.5)
    d["empty"] = torch.zeros(0, 3)
    return d


def nested():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    with torch.no_grad():
        m[0].weight.copy_(arange(6).reshape(2, 3))
        m[0].bias.copy_(torch.tensor([0.5, -0.5]))
        m[1].weight.fill_(1.0)
        m[1].bias.fill_(0.0)
    return {
        "state_dict": m.state_dict(),
        "epoch": 3,
        "lr": 0.5,
        "tag": "x",
        "aux": [arange(2) + 7.0, 7],
    }


def protocol4():
    return {"a": arange(4).reshape(2, 2), "b": arange(3, torch.int64)}


def zs():
    n, bin_num = 3, 4
    return {
        "token_z": arange(n * bin_num).reshape(n, bin_num) / 16.0,
        "pruner_z": arange(n) - 1.0,
    }


def save(obj, path, **kw):
    torch.save(obj, path, **kw)


def rewrite_location_to_cuda(path):
    """Rewrite the pickled storage location 'cpu' to 'cuda:0' and re-zip."""
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    old = b"X\x03\x00\x00\x00cpu"  # BINUNICODE 'cpu' (protocol 2)
    new = b"X\x06\x00\x00\x00cuda:0"
    out = []
    for name, data in entries:
        if name.endswith("/data.pkl"):
            assert data.count(old) == 1, "expected one (memoized) 'cpu' string"
            data = data.replace(old, new)
        out.append((name, data))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in out:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            z.writestr(info, data)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures", "torch")
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731

    save(f32_views(), p("f32_views.pt"))
    save(dtypes(), p("dtypes.pt"))
    save(nested(), p("nested.pt"))
    save(protocol4(), p("protocol4.pt"), pickle_protocol=4)
    save(zs(), p("zs_cuda.pt"))
    rewrite_location_to_cuda(p("zs_cuda.pt"))
    save({"w": arange(2)}, p("legacy.pt"), _use_new_zipfile_serialization=False)

    for name in sorted(os.listdir(out)):
        size = os.path.getsize(p(name))
        assert size < 20_000, f"{name} is {size} bytes"
        print(f"{name}: {size} bytes")
    # Sanity: torch itself can read back the rewritten CUDA-location file.
    z = torch.load(p("zs_cuda.pt"), map_location="cpu", weights_only=True)
    assert torch.equal(z["token_z"], zs()["token_z"])


if __name__ == "__main__":
    main()
