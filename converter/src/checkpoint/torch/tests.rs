//! Tests of the whole torch reader: the fixtures written by
//! `scripts/make_torch_fixtures.py`, synthetic archives built here, and hostile input
//! (forbidden globals and opcodes, truncations, mutations, cycles, huge views).

use super::zip::tests::build_zip;
use super::*;

macro_rules! fixture {
    ($f:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/torch/", $f)
    };
}

const FIXTURES: [&str; 5] = [
    fixture!("f32_views.pt"),
    fixture!("dtypes.pt"),
    fixture!("nested.pt"),
    fixture!("protocol4.pt"),
    fixture!("zs_cuda.pt"),
];

fn load(path: &str) -> Vec<TorchTensor> {
    read_torch_state_dict(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn get<'t>(ts: &'t [TorchTensor], name: &str) -> &'t TorchTensor {
    ts.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
}

fn check(ts: &[TorchTensor], name: &str, dtype: DType, shape: &[usize], vals: &[f32]) {
    let t = get(ts, name);
    assert_eq!(t.dtype, dtype, "{name}");
    assert_eq!(t.shape, shape, "{name}");
    assert_eq!(t.data.len(), t.numel() * dtype.size_in_bytes(), "{name}");
    assert_eq!(t.to_f32_vec().unwrap(), vals, "{name}");
}

fn seq(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

// ----- pickle / archive builders for synthetic inputs -------------------

fn global(m: &str, n: &str) -> Vec<u8> {
    format!("c{m}\n{n}\n").into_bytes()
}

fn s(x: &str) -> Vec<u8> {
    let mut v = vec![0x8c, x.len() as u8];
    v.extend_from_slice(x.as_bytes());
    v
}

fn int(i: i32) -> Vec<u8> {
    let mut v = vec![b'J'];
    v.extend_from_slice(&i.to_le_bytes());
    v
}

fn ints(xs: &[i32]) -> Vec<u8> {
    let mut v = vec![b'('];
    for &x in xs {
        v.extend(int(x));
    }
    v.push(b't');
    v
}

/// `_rebuild_tensor_v2(storage(key, FloatStorage, numel), offset, size, stride, False, OrderedDict())`
fn tensor(key: &str, numel: i32, offset: i32, size: &[i32], stride: &[i32]) -> Vec<u8> {
    let mut v = global("torch._utils", "_rebuild_tensor_v2");
    v.extend(b"((");
    v.extend(s("storage"));
    v.extend(global("torch", "FloatStorage"));
    v.extend(s(key));
    v.extend(s("cpu"));
    v.extend(int(numel));
    v.extend(b"tQ");
    v.extend(int(offset));
    v.extend(ints(size));
    v.extend(ints(stride));
    v.push(0x89);
    v.extend(global("collections", "OrderedDict"));
    v.extend(b")Rt");
    v.push(b'R');
    v
}

/// `{name: tensor, ...}` pickle.
fn dict_pickle(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut v = vec![0x80, 2, b'}', b'('];
    for (k, t) in items {
        v.extend(s(k));
        v.extend_from_slice(t);
    }
    v.extend(b"u.");
    v
}

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn archive(pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let names: Vec<String> = storages.iter().map(|(k, _)| format!("archive/data/{k}")).collect();
    let mut files: Vec<(&str, &[u8])> = vec![("archive/data.pkl", pkl), ("archive/byteorder", b"little")];
    for (n, (_, d)) in names.iter().zip(storages) {
        files.push((n, d));
    }
    files.push(("archive/version", b"3\n"));
    build_zip(&files, false)
}

fn synthetic() -> Vec<u8> {
    let pkl = dict_pickle(&[("w", tensor("0", 6, 0, &[2, 3], &[3, 1])), ("wt", tensor("0", 6, 0, &[3, 2], &[1, 3]))]);
    archive(&pkl, &[("0", f32_bytes(&seq(6)))])
}

fn err_of(bytes: &[u8]) -> TorchError {
    match read_torch_state_dict_from_bytes(bytes) {
        Ok(t) => panic!("expected an error, got {} tensors", t.len()),
        Err(e) => e,
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

// ----- fixtures written by scripts/make_torch_fixtures.py ---------------

#[test]
fn fixture_f32_views_parameters_and_shared_storage() {
    let ts = load(fixture!("f32_views.pt"));
    let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "linear.weight",
            "linear.bias",
            "param_with_state",
            "tensor_with_state",
            "base",
            "transposed",
            "row1",
            "strided",
            "emb.weight",
            "lm_head.weight"
        ]
    );
    use DType::F32;
    check(&ts, "linear.weight", F32, &[2, 3], &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    check(&ts, "linear.bias", F32, &[2], &[-1.0, 1.0]);
    check(&ts, "param_with_state", F32, &[3], &[10.0, 11.0, 12.0]);
    check(&ts, "tensor_with_state", F32, &[2], &[100.0, 101.0]);
    check(&ts, "base", F32, &[3, 4], &seq(12));
    check(&ts, "transposed", F32, &[4, 3], &[0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]);
    check(&ts, "row1", F32, &[4], &[4.0, 5.0, 6.0, 7.0]);
    check(&ts, "strided", F32, &[3, 2], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    check(&ts, "emb.weight", F32, &[5], &[-2.0, -1.0, 0.0, 1.0, 2.0]);
    check(&ts, "lm_head.weight", F32, &[5], &[-2.0, -1.0, 0.0, 1.0, 2.0]);
}

#[test]
fn fixture_dtypes_scalar_and_empty() {
    let ts = load(fixture!("dtypes.pt"));
    use DType::*;
    check(&ts, "f16", F16, &[6], &[-0.5, -0.25, 0.0, 0.25, 0.5, 0.75]);
    assert_eq!(get(&ts, "f16").data.get(..2), Some(&[0x00, 0xb8][..]));
    check(&ts, "bf16", BF16, &[6], &[-2.0, -0.5, 1.0, 2.5, 4.0, 5.5]);
    check(&ts, "f64", F64, &[3], &[0.0, 0.125, 0.25]);
    let i64s: Vec<i64> =
        get(&ts, "i64").data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(i64s, [-5, 999_999_999_995, 1_999_999_999_995, 2_999_999_999_995]);
    assert_eq!(get(&ts, "i64").dtype, I64);
    check(&ts, "i32", I32, &[4], &[-2.0, -1.0, 0.0, 1.0]);
    check(&ts, "i16", I16, &[3], &[0.0, -300.0, -600.0]);
    check(&ts, "i8", I8, &[4], &[-3.0, -2.0, -1.0, 0.0]);
    check(&ts, "u8", U8, &[4], &[250.0, 251.0, 252.0, 253.0]);
    check(&ts, "bool", Bool, &[3], &[1.0, 0.0, 1.0]);
    check(&ts, "scalar", F32, &[], &[3.5]);
    check(&ts, "empty", F32, &[0, 3], &[]);
}

#[test]
fn fixture_nested_checkpoint_is_flattened() {
    let c = read_torch_checkpoint(Path::new(fixture!("nested.pt"))).unwrap();
    let names: Vec<&str> = c.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["state_dict.0.weight", "state_dict.0.bias", "state_dict.1.weight", "state_dict.1.bias", "aux.0"]
    );
    assert_eq!(c.skipped, ["epoch", "lr", "tag", "aux.1"]);
    use DType::F32;
    check(&c.tensors, "state_dict.0.weight", F32, &[2, 3], &seq(6));
    check(&c.tensors, "state_dict.0.bias", F32, &[2], &[0.5, -0.5]);
    check(&c.tensors, "state_dict.1.weight", F32, &[2], &[1.0, 1.0]);
    check(&c.tensors, "state_dict.1.bias", F32, &[2], &[0.0, 0.0]);
    check(&c.tensors, "aux.0", F32, &[2], &[7.0, 8.0]);
}

#[test]
fn fixture_protocol4() {
    let ts = load(fixture!("protocol4.pt"));
    check(&ts, "a", DType::F32, &[2, 2], &seq(4));
    check(&ts, "b", DType::I64, &[3], &seq(3));
}

#[test]
fn fixture_zs_with_cuda_location() {
    let ts = load(fixture!("zs_cuda.pt"));
    assert_eq!(ts.len(), 2);
    let token: Vec<f32> = (0..12).map(|i| i as f32 / 16.0).collect();
    check(&ts, "token_z", DType::F32, &[3, 4], &token);
    check(&ts, "pruner_z", DType::F32, &[3], &[-1.0, 0.0, 1.0]);
}

#[test]
fn legacy_format_is_refused() {
    let e = read_torch_state_dict(Path::new(fixture!("legacy.pt"))).unwrap_err();
    assert!(matches!(e, TorchError::LegacyFormat), "{e}");
    assert!(e.to_string().contains("re-save with torch>=1.6"));
}

#[test]
fn missing_file_is_io_error() {
    let e = read_torch_state_dict(Path::new(fixture!("does_not_exist.pt"))).unwrap_err();
    assert!(matches!(e, TorchError::Io { .. }), "{e}");
}

// ----- robustness --------------------------------------------------------

#[test]
fn truncation_at_every_byte_is_an_error() {
    for path in FIXTURES {
        let bytes = std::fs::read(path).unwrap();
        for cut in 0..bytes.len() {
            assert!(read_torch_state_dict_from_bytes(&bytes[..cut]).is_err(), "{path} truncated at {cut} was accepted");
        }
    }
    let bytes = synthetic();
    for cut in 0..bytes.len() {
        assert!(read_torch_state_dict_from_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn byte_flips_never_panic() {
    // Raw flips (mostly caught by the zip structure / CRC checks).
    let bytes = std::fs::read(fixture!("f32_views.pt")).unwrap();
    for i in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut m = bytes.clone();
            m[i] ^= 1 << bit;
            let _ = read_torch_state_dict_from_bytes(&m);
        }
    }
}

#[test]
fn pickle_mutations_with_valid_crc_never_panic() {
    // Mutate data.pkl and the storages, then re-zip with correct CRCs so
    // the pickle machine and the tensor materialization get exercised.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for path in FIXTURES {
        let bytes = std::fs::read(path).unwrap();
        let z = ZipArchive::parse(&bytes).unwrap();
        let entries: Vec<(String, Vec<u8>)> =
            z.entries().iter().map(|e| (e.name.clone(), z.read(&e.name).unwrap().unwrap().to_vec())).collect();
        let pkl_idx = entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap();
        for round in 0..400 {
            let mut es = entries.clone();
            let target = if round % 4 == 3 { (xorshift(&mut rng) as usize) % es.len() } else { pkl_idx };
            let data = &mut es[target].1;
            if data.is_empty() {
                continue;
            }
            let flips = 1 + xorshift(&mut rng) % 4;
            for _ in 0..flips {
                let i = (xorshift(&mut rng) as usize) % data.len();
                match xorshift(&mut rng) % 3 {
                    0 => data[i] ^= 1 << (xorshift(&mut rng) % 8),
                    1 => data[i] = xorshift(&mut rng) as u8,
                    _ => {
                        let cut = i.max(1);
                        data.truncate(cut);
                    }
                }
            }
            let files: Vec<(&str, &[u8])> = es.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let _ = read_torch_state_dict_from_bytes(&build_zip(&files, round % 2 == 0));
        }
    }
}

#[test]
fn random_pickles_never_panic() {
    let mut rng = 42u64;
    let ops: &[u8] = b"()tN.}]esuaqhjrRbQKJMXcG012\x80\x85\x86\x87\x88\x89\x8a\x8c\x8f\x90\x91\x93\x94\x95";
    for _ in 0..3000 {
        let len = (xorshift(&mut rng) % 64) as usize;
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            let r = xorshift(&mut rng);
            p.push(if r % 3 == 1 { r as u8 >> 3 } else { ops[(r as usize >> 8) % ops.len()] });
        }
        let mut vm = Unpickler::new(&p);
        let _ = vm.run();
    }
}

#[test]
fn os_system_global_is_refused() {
    // The classic exploit: os.system('echo pwned') via REDUCE.
    let mut pkl = vec![0x80, 2];
    pkl.extend(global("os", "system"));
    pkl.extend(b"(");
    pkl.extend(s("echo pwned"));
    pkl.extend(b"tR.");
    let e = err_of(&archive(&pkl, &[]));
    match &e {
        TorchError::ForbiddenGlobal { module, name, offset } => {
            assert_eq!((module.as_str(), name.as_str(), *offset), ("os", "system", 2));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("'os.system'"), "{e}");
}

#[test]
fn other_dangerous_globals_are_refused() {
    for (m, n) in [
        ("builtins", "eval"),
        ("__builtin__", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch", "interpolate"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("__main__", "Net"),
    ] {
        // Via STACK_GLOBAL (protocol 4 style) as well as GLOBAL.
        let mut p1 = vec![0x80, 4];
        p1.extend(s(m));
        p1.extend(s(n));
        p1.extend(b"\x93).");
        let mut p2 = vec![0x80, 2];
        p2.extend(global(m, n));
        p2.push(b'.');
        for p in [p1, p2] {
            match err_of(&archive(&p, &[])) {
                TorchError::ForbiddenGlobal { module, name, .. } => {
                    assert_eq!((module.as_str(), name.as_str()), (m, n))
                }
                other => panic!("{m}.{n}: unexpected {other}"),
            }
        }
    }
}

#[test]
fn unsupported_dtype_is_named() {
    for n in ["ComplexFloatStorage", "uint16", "float8_e4m3fn", "complex64", "qint8"] {
        let mut p = vec![0x80, 2];
        p.extend(global("torch", n));
        p.push(b'.');
        match err_of(&archive(&p, &[])) {
            TorchError::UnsupportedDType { name, .. } => assert_eq!(name, n),
            other => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn unsupported_opcodes_are_refused() {
    for (op, name) in [(b'i', "INST"), (0x81, "NEWOBJ"), (b'o', "OBJ"), (0x82, "EXT1"), (b'P', "PERSID")] {
        let p = [0x80, 2, b'(', op, b'.'];
        match err_of(&archive(&p, &[])) {
            TorchError::UnsupportedOpcode { opcode, name: n, offset } => {
                assert_eq!((opcode, n, offset), (op, name, 3));
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn synthetic_views_and_shared_storage() {
    let ts = read_torch_state_dict_from_bytes(&synthetic()).unwrap();
    check(&ts, "w", DType::F32, &[2, 3], &seq(6));
    check(&ts, "wt", DType::F32, &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn zip64_archive_is_read() {
    let pkl = dict_pickle(&[("w", tensor("0", 2, 0, &[2], &[1]))]);
    let st = f32_bytes(&[1.5, -2.0]);
    let files: Vec<(&str, &[u8])> = vec![("m/data.pkl", &pkl), ("m/data/0", &st)];
    let ts = read_torch_state_dict_from_bytes(&build_zip(&files, true)).unwrap();
    check(&ts, "w", DType::F32, &[2], &[1.5, -2.0]);
}

#[test]
fn out_of_bounds_view_names_the_tensor() {
    let pkl = dict_pickle(&[("bad", tensor("0", 6, 2, &[2, 3], &[3, 1]))]);
    match err_of(&archive(&pkl, &[("0", f32_bytes(&seq(6)))])) {
        TorchError::Tensor { name, msg } => {
            assert_eq!(name, "bad");
            assert!(msg.contains("reaches element 7"), "{msg}");
        }
        other => panic!("unexpected {other}"),
    }
    // Storage entry shorter than the declared numel.
    let pkl = dict_pickle(&[("short", tensor("0", 6, 0, &[6], &[1]))]);
    assert!(matches!(
        err_of(&archive(&pkl, &[("0", f32_bytes(&seq(5)))])),
        TorchError::Tensor { name, .. } if name == "short"
    ));
    // Missing storage entry.
    let pkl = dict_pickle(&[("gone", tensor("7", 1, 0, &[1], &[1]))]);
    assert!(matches!(
        err_of(&archive(&pkl, &[])),
        TorchError::MissingEntry { name, .. } if name == "archive/data/7"
    ));
}

#[test]
fn huge_expanded_view_is_refused() {
    // stride 0 over a 1-element storage: 2^40 elements from a 4-byte storage.
    let pkl = dict_pickle(&[("expanded", tensor("0", 1, 0, &[1 << 20, 1 << 20], &[0, 0]))]);
    match err_of(&archive(&pkl, &[("0", f32_bytes(&[1.0]))])) {
        TorchError::Tensor { name, msg } => {
            assert_eq!(name, "expanded");
            assert!(msg.contains("exceeds the limit"), "{msg}");
        }
        other => panic!("unexpected {other}"),
    }
    // A small expanded view is fine.
    let pkl = dict_pickle(&[("e", tensor("0", 1, 0, &[2, 2], &[0, 0]))]);
    let ts = read_torch_state_dict_from_bytes(&archive(&pkl, &[("0", f32_bytes(&[3.0]))])).unwrap();
    check(&ts, "e", DType::F32, &[2, 2], &[3.0; 4]);
}

#[test]
fn big_endian_is_refused() {
    let pkl = dict_pickle(&[]);
    let z = build_zip(&[("a/data.pkl", &pkl), ("a/byteorder", b"big")], false);
    assert!(matches!(err_of(&z), TorchError::ByteOrder(o) if o == "big"));
    // Without a byteorder entry little-endian is assumed.
    let z = build_zip(&[("a/data.pkl", &pkl)], false);
    assert!(read_torch_state_dict_from_bytes(&z).unwrap().is_empty());
}

#[test]
fn non_checkpoint_archives_are_refused() {
    let z = build_zip(&[("a/readme.txt", b"hi")], false);
    assert!(matches!(err_of(&z), TorchError::NotACheckpoint(_)));
    let pkl = dict_pickle(&[]);
    let z = build_zip(&[("m/data.pkl", &pkl), ("m/constants.pkl", &pkl), ("m/code/m.py", b"")], false);
    assert!(matches!(err_of(&z), TorchError::TorchScript { prefix } if prefix == "m"));
    assert!(matches!(err_of(b"not a zip at all, just text"), TorchError::Zip { .. }));
    // Top-level object that is not a dict.
    let mut pkl = vec![0x80, 2];
    pkl.extend(tensor("0", 1, 0, &[], &[]));
    pkl.push(b'.');
    assert!(matches!(err_of(&archive(&pkl, &[("0", f32_bytes(&[1.0]))])), TorchError::Structure(_)));
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // 1e6 nested 1-tuples: no recursion in the VM, nor when dropping.
    let mut p = vec![0x80, 2, b')'];
    p.extend(std::iter::repeat_n(0x85, 1_000_000));
    p.push(b'.');
    assert!(matches!(err_of(&archive(&p, &[])), TorchError::Structure(_)));
    // Long chain of lists linked through the memo after construction.
    let n = 200_000u32;
    let mut p = vec![0x80, 2];
    for i in 0..n {
        p.push(b']');
        p.push(b'r');
        p.extend(i.to_le_bytes());
        p.push(b'0');
    }
    for i in 0..n - 1 {
        p.push(b'j');
        p.extend(i.to_le_bytes());
        p.push(b'j');
        p.extend((i + 1).to_le_bytes());
        p.extend(b"a0");
    }
    p.extend(b"}K\x00j\x00\x00\x00\x00s.");
    match err_of(&archive(&p, &[])) {
        TorchError::Structure(msg) => assert!(msg.contains("nested more than"), "{msg}"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn cycles_and_shared_subgraphs_are_bounded() {
    // d = {}; d['self'] = d
    let mut p = vec![0x80, 2, b'}', b'q', 0];
    p.extend(s("self"));
    p.extend(b"h\x00s.");
    assert!(matches!(err_of(&archive(&p, &[])), TorchError::Structure(_)));
    // d_i = {'a': d_{i+1}, 'b': d_{i+1}} for 40 levels: 2^40 paths.
    let mut p = vec![0x80, 2, b'}', b'q', 0];
    for i in 1..40u8 {
        p.extend(b"}q");
        p.push(i);
        p.extend(b"0h");
        p.push(i - 1);
        p.push(b'(');
        p.extend(s("a"));
        p.push(b'h');
        p.push(i);
        p.extend(s("b"));
        p.push(b'h');
        p.push(i);
        p.extend(b"u0");
    }
    p.extend(b"h\x00.");
    match err_of(&archive(&p, &[])) {
        TorchError::Structure(msg) => assert!(msg.contains("larger than"), "{msg}"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn duplicate_flattened_names_are_refused() {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(s("a.b"));
    p.extend(tensor("0", 1, 0, &[], &[]));
    p.extend(s("a"));
    p.extend(b"}(");
    p.extend(s("b"));
    p.extend(tensor("0", 1, 0, &[], &[]));
    p.extend(b"uu.");
    match err_of(&archive(&p, &[("0", f32_bytes(&[1.0]))])) {
        TorchError::Structure(msg) => {
            assert!(msg.contains("duplicate tensor name 'a.b'"), "{msg}")
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn to_f32_vec_names_the_tensor_of_a_partial_element() {
    let t = TorchTensor { name: "w".into(), dtype: DType::F32, shape: vec![1], data: vec![0; 5] };
    match t.to_f32_vec() {
        Err(TorchError::Tensor { name, msg }) => {
            assert_eq!(name, "w");
            assert!(msg.contains("not a whole number"), "{msg}");
        }
        other => panic!("unexpected {other:?}"),
    }
}
