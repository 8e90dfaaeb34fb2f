//! The int8 GEMM (`Operands::Int8`) and the row quantiser.
//!
//! Every int8 kernel computes the exact integer `Σ_k q_a · q_w` and then the same `f32`
//! steps (`gemm::Int8Scales`), so every kernel equals the scalar twin **bit for bit**
//! on any data, for every epilogue but GELU (whose vector form is within
//! `ops::GELU_TOL` of the scalar one). The twin itself is held to an independent
//! reference: an `i64` sum of the quantised operands, dequantised in the documented
//! order.

use super::support::{check_bits, check_close, Rng};
use crate::gemm::{self, Blocking, Epilogue, GemmParams, Int8Outliers, Int8Scales};
use crate::pack::{self, NR};
use crate::{Isa, Kernels};

struct Case {
    m: usize,
    k: usize,
    n: usize,
    /// Row stride of `a` in words, and of C.
    lda: usize,
    ldc: usize,
    /// Quantised activations and their row scales.
    a: Vec<u32>,
    row: Vec<f32>,
    w: pack::QuantizedWeight,
    bias: Vec<f32>,
    res: Vec<f32>,
    /// Outlier channels: `oc` f32 activations per row (`old` apart) and their packed
    /// `[oc, n]` weight rows (`oc = 0`: none).
    oc: usize,
    old: usize,
    ox: Vec<f32>,
    ow: Vec<f32>,
}

impl Case {
    /// Random activations and weights in [-1, 1] (times `spread`), quantised as the
    /// engine quantises them.
    fn new(rng: &mut Rng, m: usize, k: usize, n: usize, pad: usize) -> Case {
        let act = rng.floats(m * k, -1.0, 1.0);
        let wt = rng.floats(n * k, -1.0, 1.0);
        Case::from(m, k, n, pad, &act, &wt, rng)
    }

    fn from(m: usize, k: usize, n: usize, pad: usize, act: &[f32], wt: &[f32], rng: &mut Rng) -> Case {
        let quads = k.div_ceil(4);
        let (lda, ldc) = (quads + pad, n + pad);
        let mut a = vec![0u32; m.saturating_sub(1) * lda + quads];
        let mut row = vec![0.0; m];
        for i in 0..m {
            row[i] = pack::quantize_row_i8(&act[i * k..(i + 1) * k], &mut a[i * lda..i * lda + quads]);
        }
        let w = pack::quantize_linear_weight_i8(wt, n, k);
        let bias = rng.floats(n, -1.0, 1.0);
        let res = rng.floats(m.saturating_sub(1) * ldc + n, -1.0, 1.0);
        Case { m, k, n, lda, ldc, a, row, w, bias, res, oc: 0, old: 0, ox: Vec::new(), ow: Vec::new() }
    }

    /// The same case with `oc` outlier channels: activations with a spread far
    /// beyond the quantised rows' (what makes a channel an outlier), stride `oc + 2`.
    fn with_outliers(mut self, rng: &mut Rng, oc: usize) -> Case {
        self.oc = oc;
        self.old = oc + 2;
        self.ox = rng.floats(self.m.saturating_sub(1) * self.old + oc, -40.0, 40.0);
        self.ow = pack::pack_linear_weight(&rng.floats(self.n * oc, -1.0, 1.0), self.n, oc);
        self
    }

    fn outliers(&self) -> Int8Outliers<'_> {
        Int8Outliers { x: &self.ox, ld: self.old, c: self.oc, w: &self.ow }
    }

    fn c_len(&self) -> usize {
        self.m.saturating_sub(1) * self.ldc + self.n
    }

    fn epilogue(&self, ep: usize) -> Epilogue<'_> {
        match ep {
            0 => Epilogue::None,
            1 => Epilogue::Bias(&self.bias),
            2 => Epilogue::BiasGelu(&self.bias),
            3 => Epilogue::BiasResidual { bias: &self.bias, residual: &self.res, ldr: self.ldc },
            _ => Epilogue::BiasResidualGelu { bias: &self.bias, residual: &self.res, ldr: self.ldc },
        }
    }

    fn scales(&self) -> Int8Scales<'_> {
        Int8Scales { row: &self.row, col: &self.w.scale, col_sum: &self.w.sum }
    }

    fn params<'a>(&'a self, c: &'a mut [f32], ep: usize) -> GemmParams<'a> {
        let (m, k, n) = (self.m, self.k, self.n);
        GemmParams::new_int8(&self.a, self.lda, m, k, &self.w.packed, n, c, self.ldc, self.epilogue(ep), self.scales())
            .unwrap()
            .with_outliers(self.outliers())
            .unwrap()
    }

    /// Runs `gemm` over all panels into a C full of NaN; returns the valid `[m, n]`.
    fn run(&self, gemm: &dyn Fn(&mut GemmParams), ep: usize, blocking: Option<Blocking>) -> Vec<f32> {
        let mut c = vec![f32::NAN; self.c_len() + 8];
        let len = self.c_len();
        {
            let mut p = self.params(&mut c[..len], ep);
            if let Some(b) = blocking {
                p = p.with_blocking(b);
            }
            gemm(&mut p);
        }
        for (idx, v) in c.iter().enumerate() {
            let (i, j) = (idx / self.ldc, idx % self.ldc);
            assert!(i < self.m && j < self.n || v.is_nan(), "wrote {v} outside [m, n] at ({i}, {j})");
        }
        (0..self.m).flat_map(|i| c[i * self.ldc..i * self.ldc + self.n].to_vec()).collect()
    }

    /// The reference: `Σ q_a · q_w` in i64 from the stored bytes, dequantised and
    /// finished in the documented order.
    fn reference(&self, ep: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.m * self.n];
        for i in 0..self.m {
            for j in 0..self.n {
                let mut sum = 0i64;
                for kk in 0..self.k {
                    let byte = (self.a[i * self.lda + kk / 4] >> (8 * (kk % 4))) as u8;
                    sum += (i64::from(byte) - 128) * i64::from(pack::packed_at_i8(&self.w.packed, self.k, kk, j));
                }
                let mut y = (sum as i32 as f32) * (self.row[i] * self.w.scale[j]);
                for c in 0..self.oc {
                    let w = self.ow[(j / NR) * self.oc * NR + c * NR + j % NR];
                    y = self.ox[i * self.old + c].mul_add(w, y);
                }
                out[i * self.n + j] = match ep {
                    0 => y,
                    1 => y + self.bias[j],
                    2 => crate::ops::gelu_scalar(y + self.bias[j]),
                    3 => y + self.bias[j] + self.res[i * self.ldc + j],
                    _ => crate::ops::gelu_scalar(y + self.bias[j] + self.res[i * self.ldc + j]),
                };
            }
        }
        out
    }

    fn name(&self) -> String {
        format!(
            "int8 {}×{}×{} (lda {} words, ldc {}, {} outlier channels)",
            self.m, self.k, self.n, self.lda, self.ldc, self.oc
        )
    }
}

/// The int8 kernels of this CPU: every tier's table kernel, and on CPUs with
/// AVX512-VNNI the test-only EVEX form of the 256-bit VNNI tile (so the 6 × 16
/// zero-point geometry is run where AVX-VNNI itself is absent). Tiers the CPU lacks
/// are reported as skipped.
/// A named int8 GEMM under test.
type Named = (String, Box<dyn Fn(&mut GemmParams)>);

fn kernels() -> Vec<Named> {
    let mut v: Vec<Named> = Vec::new();
    for isa in Isa::ALL {
        match Kernels::for_isa(isa) {
            Ok(k) => v.push((k.gemm_i8_name().to_string(), Box::new(move |p: &mut GemmParams| k.gemm(p)))),
            Err(e) => println!("skipped: int8 GEMM of the {isa} tier ({e})"),
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Where AMX replaces the vector kernel in the table, run the vector one too.
        if let Ok(k) = Kernels::for_cpu(Isa::Avx512, &crate::Cpu::detected().without_amx()) {
            if !v.iter().any(|(name, _)| name == k.gemm_i8_name()) {
                v.push((k.gemm_i8_name().to_string(), Box::new(move |p: &mut GemmParams| k.gemm(p))));
            }
        }
        let f = crate::Cpu::detected().features();
        if f.avx2 && f.avx512vl && f.avx512_vnni {
            v.push((
                "evex256vnni_gemm_i8_6x16 (test-only)".into(),
                Box::new(|p: &mut GemmParams| {
                    // SAFETY: the CPU has the features (checked above); one call at a time.
                    unsafe { gemm::avx2::evex256vnni_gemm_i8_6x16(p, 0..p.panels()) }
                }),
            ));
        } else {
            println!("skipped: evex256vnni_gemm_i8_6x16 (no AVX512-VNNI)");
        }
        if !f.avx_vnni {
            println!("skipped: avxvnni_gemm_i8_6x16 (no AVX-VNNI on this CPU)");
        }
        if !crate::Cpu::detected().has_amx_int8() {
            println!("skipped: amx_int8_gemm_32x32 (no AMX-INT8 granted on this CPU)");
        }
    }
    v
}

fn twin(p: &mut GemmParams) {
    Kernels::scalar().gemm(p)
}

/// The twin equals the independent i64 reference bit for bit (GELU: the same scalar
/// GELU), on odd shapes and k.
#[test]
fn int8_twin_matches_the_i64_reference() {
    let mut rng = Rng::new(31);
    for (m, k, n) in [(5, 301, 70), (1, 3072, 33), (9, 1, 1), (3, 2, 40), (2, 7, 5)] {
        let case = Case::new(&mut rng, m, k, n, 1);
        for ep in 0..5 {
            check_bits("int8 twin vs reference", &case.run(&twin, ep, None), &case.reference(ep), |idx| {
                format!("{} ep {ep} [{}, {}]", case.name(), idx / n, idx % n)
            })
            .unwrap();
        }
    }
}

/// Every m edge of the 6-, 8- and 32-row tiles, partial and full panels, k off and on
/// the quad and the AMX step, every epilogue: each kernel equals the twin (GELU within
/// its tolerance).
#[test]
fn int8_kernels_equal_the_twin_on_edge_shapes() {
    let mut rng = Rng::new(32);
    let kernels = kernels();
    for m in [1, 5, 6, 7, 8, 9, 10, 11, 16, 17, 32, 33, 65] {
        for n in [1, 16, 31, 32, 33, 3 * NR + 5] {
            for k in [1, 3, 4, 7, 64, 65, 768, 3071] {
                let case = Case::new(&mut rng, m, k, n, 3);
                for ep in 0..5 {
                    let want = case.run(&twin, ep, None);
                    for (name, gemm) in &kernels {
                        let got = case.run(gemm, ep, None);
                        let at = |idx: usize| format!("{} ep {ep} [{}, {}]", case.name(), idx / n, idx % n);
                        if ep == 2 || ep == 4 {
                            let bound = |idx: usize| crate::ops::GELU_TOL.bound(want[idx]);
                            check_close(&format!("{name} vs twin"), &got, &want, bound, at).unwrap();
                        } else {
                            check_bits(&format!("{name} vs twin"), &got, &want, at).unwrap();
                        }
                    }
                }
            }
        }
    }
}

/// The BERT shapes, tiny cache blocks (sums parked in C as i32 between k blocks), a
/// row alone against the row in the batch, and panel and row splits: all bit for bit.
#[test]
fn int8_blocking_split_and_batch_invariance() {
    let mut rng = Rng::new(33);
    for (m, k, n, oc) in [(128, 768, 2304, 0), (25, 768, 3072, 0), (40, 3072, 768, 8), (37, 777, 9 * NR + 3, 3)] {
        let case = Case::new(&mut rng, m, k, n, 2).with_outliers(&mut rng, oc);
        for (name, gemm) in &kernels() {
            for ep in [1, 3] {
                let want = case.run(gemm, ep, None);
                check_bits(&format!("{name} vs twin"), &want, &case.run(&twin, ep, None), |i| format!("{i}")).unwrap();
                for bl in [
                    Blocking { kc: 8, a_block_bytes: 12 * 8 * 4, c_group_bytes: 1, c_into_l1: false, b_into_l1: false },
                    Blocking::for_caches(crate::cpu::CacheSizes { l1d: 32 << 10, l2: 512 << 10 }),
                ] {
                    let got = case.run(gemm, ep, Some(bl));
                    check_bits(&format!("{name}: {bl:?}"), &got, &want, |i| format!("{} ep {ep} {i}", case.name()))
                        .unwrap();
                }
                for i in [0, 1, m / 2, m - 1] {
                    let one = Case {
                        m: 1,
                        a: case.a[i * case.lda..i * case.lda + k.div_ceil(4)].to_vec(),
                        row: vec![case.row[i]],
                        res: case.res[i * case.ldc..i * case.ldc + n].to_vec(),
                        w: case.w.clone(),
                        bias: case.bias.clone(),
                        ox: case.ox.get(i * case.old..i * case.old + case.oc).unwrap_or(&[]).to_vec(),
                        ow: case.ow.clone(),
                        ..case
                    };
                    check_bits(
                        &format!("{name}: row {i} alone"),
                        &one.run(gemm, ep, None),
                        &want[i * n..(i + 1) * n],
                        |j| format!("ep {ep} col {j}"),
                    )
                    .unwrap();
                }
            }
        }
        // Panels in uneven chunks out of order, rows in two blocks, on each table.
        for isa in Isa::ALL {
            let Ok(k) = Kernels::for_isa(isa) else { continue };
            let want = case.run(&|p| k.gemm(p), 1, None);
            let mut c = vec![f32::NAN; case.c_len()];
            {
                let mut p = case.params(&mut c, 1);
                let panels = p.panels();
                let cut = m / 3;
                for r in [panels / 2..panels, 0..1, 1..panels / 2] {
                    // SAFETY: one call at a time.
                    unsafe {
                        k.gemm_panels(&p.rows(0..cut), r.clone());
                        k.gemm_panels(&p.rows(cut..m), r);
                    }
                }
            }
            let got: Vec<f32> = (0..m).flat_map(|i| c[i * case.ldc..i * case.ldc + n].to_vec()).collect();
            check_bits(&format!("{}: split", k.gemm_i8_name()), &got, &want, |i| format!("{i}")).unwrap();
        }
    }
}

/// The saturation worst case of `vpmaddubsw` (the AVX2 kernel): every activation and
/// weight at ±127 with signs chosen so that every pair sum is `±2 · 127 · 127`, over
/// the longest BERT `k`; exact on every kernel (an `i16` saturation would lose 4 096
/// per pair and show at once).
#[test]
fn int8_saturation_worst_case_is_exact() {
    let mut rng = Rng::new(34);
    let (m, k, n) = (7, 3072, 40);
    for sign_pattern in 0..4 {
        let act: Vec<f32> =
            (0..m * k).map(|i| if sign_pattern & 1 == 0 || (i / 2) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let wt: Vec<f32> =
            (0..n * k).map(|i| if sign_pattern & 2 == 0 || (i % k / 2) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let case = Case::from(m, k, n, 0, &act, &wt, &mut rng);
        assert!(case.a.iter().all(|w| w.to_le_bytes().iter().all(|&b| b == 255 || b == 1)), "activations at ±127");
        let want = case.reference(0);
        // Signs that agree (patterns 0 and 3) make every product +127², so every output
        // is the largest sum there is; patterns 1 and 2 cancel to 0.
        let top = (127 * 127 * k) as f32 * (case.row[0] * case.w.scale[0]);
        let expect = if sign_pattern == 0 || sign_pattern == 3 { top } else { 0.0 };
        assert!(want.iter().all(|&v| v == expect), "pattern {sign_pattern}: {} != {expect}", want[0]);
        for (name, gemm) in &kernels() {
            check_bits(&format!("{name}: ±127 everywhere"), &case.run(gemm, 0, None), &want, |i| format!("{i}"))
                .unwrap();
        }
    }
}

/// Every tier's row quantiser writes the bytes and the scale of the scalar reference,
/// bit for bit, on every length (vector body and tail), zeros, and extreme values;
/// bytes past the row are 128, and no byte is 0 (q = -128 never appears).
#[test]
fn quantize_row_matches_the_reference() {
    let mut rng = Rng::new(35);
    for isa in Isa::ALL {
        let Ok(k) = Kernels::for_isa(isa) else {
            println!("skipped: quantize_row of the {isa} tier");
            continue;
        };
        for len in (0..70).chain([767, 768, 3072]) {
            for scale in [1.0f32, 1e-30, 3e30, 0.0] {
                let mut x: Vec<f32> = rng.floats(len, -1.0, 1.0).iter().map(|v| v * scale).collect();
                if len > 3 {
                    x[len / 2] = -x.iter().fold(0.0f32, |m, v| m.max(v.abs())); // the extreme negative
                }
                let words = len.div_ceil(4) + 3;
                let (mut want, mut got) = (vec![0u32; words], vec![0xdead_beef; words]);
                let s_want = pack::quantize_row_i8(&x, &mut want);
                let s_got = k.quantize_row(&x, &mut got);
                assert_eq!(s_got.to_bits(), s_want.to_bits(), "{isa} len {len} scale");
                assert_eq!(got, want, "{isa} len {len} x {scale}");
                let bytes: Vec<u8> = got.iter().flat_map(|w| w.to_le_bytes()).collect();
                assert!(bytes[..len].iter().all(|&b| b != 0), "{isa}: a byte q = -128");
                assert!(bytes[len..].iter().all(|&b| b == 128), "{isa}: padding");
            }
        }
    }
}

/// A quantised weight: scales positive, bytes in -127..=127, sums exact, the
/// dequantised values within half a step of the originals inside the clip (saturated
/// beyond it), and the clip never worse in squared error than none.
#[test]
fn weight_quantisation_is_symmetric_per_column() {
    let mut rng = Rng::new(36);
    let (n, k) = (70, 301);
    let mut wt = rng.floats(n * k, -2.0, 2.0);
    wt[5 * k..6 * k].fill(0.0); // an all-zero column
    let q = pack::quantize_linear_weight_i8(&wt, n, k);
    assert_eq!(q.packed.len(), pack::packed_len_i8(k, n));
    for o in 0..n {
        assert!(q.scale[o] > 0.0 && q.scale[o].is_finite());
        let mut sum = 0i64;
        for kk in 0..k {
            let v = pack::packed_at_i8(&q.packed, k, kk, o);
            assert!(v != i8::MIN, "column {o} holds -128");
            sum += i64::from(v);
            let (x, s) = (wt[o * k + kk], q.scale[o]);
            let err = (f32::from(v) * s - x).abs();
            if x.abs() <= 127.0 * s {
                assert!(err <= 0.5001 * s, "column {o} row {kk}: error {err} > half a step");
            } else {
                // Clipped (the clip minimises the row's squared error): saturated at ±127.
                assert_eq!(v.unsigned_abs(), 127, "column {o} row {kk}: {x} beyond the clip");
            }
        }
        assert_eq!(q.sum[o], sum as f32, "column {o} sum");
    }
    assert_eq!(q.scale[5], 1.0, "an all-zero column keeps a positive scale");
    for o in (0..n).filter(|&o| o != 5) {
        let row = &wt[o * k..(o + 1) * k];
        let mse = |scale: f32| -> f64 {
            row.iter()
                .map(|&x| f64::from(((x / scale).round_ties_even().clamp(-127.0, 127.0) * scale - x).powi(2)))
                .sum()
        };
        let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(mse(q.scale[o]) <= mse(amax / 127.0) * (1.0 + 1e-9), "column {o}: the clip made it worse");
    }
    // Padding quads (k = 301 is not a multiple of 4) hold zeros.
    let widened = pack::widen_i8_panels(&q.packed, &q.scale, k, n);
    assert_eq!(widened.len(), pack::packed_len(k, n));
}

/// Shapes an int8 call refuses: B of another layout's length, short scale tables, an
/// A too short, a k whose sums could overflow.
#[test]
fn int8_params_check_lengths() {
    let w = pack::quantize_linear_weight_i8(&[0.5; 64 * 8], 64, 8);
    let a = vec![0x8080_8080u32; 2 * 2];
    let row = [1.0f32; 2];
    let ok = Int8Scales { row: &row, col: &w.scale, col_sum: &w.sum };
    let mut c = vec![0.0; 2 * 64];
    assert!(GemmParams::new_int8(&a, 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, ok).is_ok());
    assert!(GemmParams::new_int8(&a, 2, 2, 8, &w.packed[1..], 64, &mut c, 64, Epilogue::None, ok).is_err());
    assert!(GemmParams::new_int8(&a[1..], 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, ok).is_err());
    let short = Int8Scales { row: &row[..1], ..ok };
    assert!(GemmParams::new_int8(&a, 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, short).is_err());
    let short = Int8Scales { col: &w.scale[..63], ..ok };
    assert!(GemmParams::new_int8(&a, 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, short).is_err());
    let short = Int8Scales { col_sum: &w.sum[..63], ..ok };
    assert!(GemmParams::new_int8(&a, 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, short).is_err());
    let big = gemm::MAX_K_INT8 + 1;
    assert!(GemmParams::new_int8(&a, 2, 2, big, &w.packed, 64, &mut c, 64, Epilogue::None, ok).is_err());
}

/// Outlier channels: the twin equals the reference (the i64 sum, dequantised, then the
/// channels' fused multiply-adds in order), and every kernel equals the twin, on the
/// edges of every tile geometry, with 1 to 9 channels and every epilogue.
#[test]
fn int8_outlier_channels_on_every_kernel() {
    let mut rng = Rng::new(37);
    let kernels = kernels();
    for (m, k, n, oc) in [(1, 64, 32, 1), (7, 65, 33, 8), (11, 768, 3 * NR + 5, 9), (17, 3, 16, 2), (33, 768, 31, 4)] {
        let case = Case::new(&mut rng, m, k, n, 1).with_outliers(&mut rng, oc);
        for ep in 0..5 {
            let at = |idx: usize| format!("{} ep {ep} [{}, {}]", case.name(), idx / n, idx % n);
            let want = case.run(&twin, ep, None);
            check_bits("int8 twin vs reference", &want, &case.reference(ep), at).unwrap();
            for (name, gemm) in &kernels {
                let got = case.run(gemm, ep, None);
                if ep == 2 || ep == 4 {
                    let bound = |idx: usize| crate::ops::GELU_TOL.bound(want[idx]);
                    check_close(&format!("{name} vs twin"), &got, &want, bound, at).unwrap();
                } else {
                    check_bits(&format!("{name} vs twin"), &got, &want, at).unwrap();
                }
            }
        }
        // The channels count: without them every output differs.
        let with = case.run(&twin, 1, None);
        let mut c = vec![f32::NAN; case.c_len()];
        let mut p = GemmParams::new_int8(
            &case.a,
            case.lda,
            m,
            k,
            &case.w.packed,
            n,
            &mut c,
            case.ldc,
            case.epilogue(1),
            case.scales(),
        )
        .unwrap();
        twin(&mut p);
        let without: Vec<f32> = (0..m).flat_map(|i| c[i * case.ldc..i * case.ldc + n].to_vec()).collect();
        assert!(
            with.iter().zip(&without).any(|(a, b)| a != b),
            "{}: the outlier channels changed nothing",
            case.name()
        );
    }
}

/// Outlier operands that do not fit the call are refused, naming them.
#[test]
fn int8_outlier_params_check_lengths() {
    let w = pack::quantize_linear_weight_i8(&[0.5; 64 * 8], 64, 8);
    let a = vec![0x8080_8080u32; 2 * 2];
    let row = [1.0f32; 2];
    let scales = Int8Scales { row: &row, col: &w.scale, col_sum: &w.sum };
    let ow = pack::pack_linear_weight(&[0.25; 64 * 3], 64, 3);
    let ox = [1.0f32; 2 * 4];
    let mut c = vec![0.0; 2 * 64];
    let mut try_with = |o: Int8Outliers| {
        GemmParams::new_int8(&a, 2, 2, 8, &w.packed, 64, &mut c, 64, Epilogue::None, scales)
            .unwrap()
            .with_outliers(o)
            .map(|_| ())
    };
    let ok = Int8Outliers { x: &ox, ld: 4, c: 3, w: &ow };
    assert!(try_with(ok).is_ok());
    let outliers = crate::error::Operand::Outliers;
    assert!(
        matches!(try_with(Int8Outliers { x: &ox[..6], ..ok }), Err(crate::Error::Shape { operand, .. }) if operand == outliers)
    );
    assert!(
        matches!(try_with(Int8Outliers { ld: 2, ..ok }), Err(crate::Error::Stride { operand, .. }) if operand == outliers)
    );
    assert!(
        matches!(try_with(Int8Outliers { w: &ow[1..], ..ok }), Err(crate::Error::Shape { operand, .. }) if operand == outliers)
    );
    assert!(try_with(Int8Outliers { c: 0, x: &[], w: &[], ld: 0 }).is_ok(), "no channels: nothing to check");
}
