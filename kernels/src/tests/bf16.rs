//! The bf16 GEMM (`Operands::Bf16`): the native kernel against the scalar twin (which
//! emulates `vdpbf16ps`), and the twin against an f64 reference of the bf16-rounded
//! operands. Integer data is exact in bf16 and in every sum, so those comparisons are
//! bit for bit on any CPU; random floats are compared within [`gemm_bound`].

use super::gemm::gemm_bound;
use super::support::{check_bits, check_close, Rng};
use crate::gemm::{self, Blocking, Epilogue, GemmParams};
use crate::pack::{self, NR};
use crate::Kernels;

// The native bf16 GEMM and the twin add the same exact products, one rounding per add
// (`2·ceil(k/2)` adds), possibly in another order inside a pair on another vendor's
// `vdpbf16ps`: so the tolerance on random floats is the f32 dot-product bound of the
// f32 tests, [`gemm_bound`].

struct Case {
    m: usize,
    k: usize,
    n: usize,
    /// Row stride of `a` in pair words, and of C.
    lda: usize,
    ldc: usize,
    /// Activations as bf16 pairs, and the bf16-rounded values as f32 (`[m, k]`).
    a: Vec<u32>,
    a32: Vec<f32>,
    /// Packed `panel32x2` weight, and its bf16 values as the logical `[k, n]`.
    b: Vec<u32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    res: Vec<f32>,
}

impl Case {
    fn new(rng: &mut Rng, m: usize, k: usize, n: usize, ints: bool, pad: usize) -> Case {
        let pairs = k.div_ceil(2);
        let (lda, ldc) = (pairs + pad, n + pad);
        let mut gen = |len: usize| if ints { rng.ints(len, -3, 3) } else { rng.floats(len, -1.0, 1.0) };
        let act = gen(m * k);
        let wt = gen(n * k);
        let (bias, res) = (gen(n), gen(m.saturating_sub(1) * ldc + n));
        let mut a = vec![0u32; m.saturating_sub(1) * lda + pairs];
        for i in 0..m {
            pack::bf16_pairs_from_f32(&act[i * k..(i + 1) * k], &mut a[i * lda..i * lda + pairs]);
        }
        let round = |x: f32| pack::f32_from_bf16(pack::bf16_from_f32(x));
        let a32 = act.iter().map(|&x| round(x)).collect();
        let mut w = vec![0.0; k * n];
        for o in 0..n {
            for kk in 0..k {
                w[kk * n + o] = round(wt[o * k + kk]);
            }
        }
        let b = pack::pack_linear_weight_bf16(&wt, n, k);
        Case { m, k, n, lda, ldc, a, a32, b, w, bias, res }
    }

    fn c_len(&self) -> usize {
        self.m.saturating_sub(1) * self.ldc + self.n
    }

    fn epilogue(&self, ep: usize) -> Epilogue<'_> {
        match ep {
            0 => Epilogue::None,
            1 => Epilogue::Bias(&self.bias),
            2 => Epilogue::BiasGelu(&self.bias),
            _ => Epilogue::BiasResidual { bias: &self.bias, residual: &self.res, ldr: self.ldc },
        }
    }

    fn params<'a>(&'a self, c: &'a mut [f32], ep: usize) -> GemmParams<'a> {
        GemmParams::new_bf16(&self.a, self.lda, self.m, self.k, &self.b, self.n, c, self.ldc, self.epilogue(ep))
            .unwrap()
    }

    /// Runs the bf16 GEMM of `kernels` over all panels into a C full of NaN; returns the
    /// valid `[m, n]`.
    fn run(&self, kernels: &Kernels, ep: usize, blocking: Option<Blocking>) -> Vec<f32> {
        let mut c = vec![f32::NAN; self.c_len() + 8];
        let len = self.c_len();
        {
            let mut p = self.params(&mut c[..len], ep);
            if let Some(b) = blocking {
                p = p.with_blocking(b);
            }
            kernels.gemm(&mut p);
        }
        // Nothing outside [m, n] is written.
        for (idx, v) in c.iter().enumerate() {
            let (i, j) = (idx / self.ldc, idx % self.ldc);
            assert!(i < self.m && j < self.n || v.is_nan(), "wrote {v} outside [m, n] at ({i}, {j})");
        }
        (0..self.m).flat_map(|i| c[i * self.ldc..i * self.ldc + self.n].to_vec()).collect()
    }

    fn name(&self) -> String {
        format!("bf16 {}×{}×{} (lda {} words, ldc {})", self.m, self.k, self.n, self.lda, self.ldc)
    }
}

/// The twin on the bf16-rounded operands equals an f64 dot product within the f32
/// rounding of its `k` adds (the twin is the reference the native kernel is held to).
#[test]
fn bf16_twin_matches_f64_reference() {
    let mut rng = Rng::new(21);
    for (m, k, n) in [(5, 301, 70), (1, 3072, 33), (9, 1, 1), (3, 2, 40)] {
        let case = Case::new(&mut rng, m, k, n, false, 1);
        let got = case.run(&twin(), 1, None);
        let (mut want, mut sum_abs) = (vec![0.0f32; m * n], vec![0.0f64; m * n]);
        for i in 0..m {
            for j in 0..n {
                let prods = (0..k).map(|kk| f64::from(case.a32[i * k + kk]) * f64::from(case.w[kk * n + j]));
                want[i * n + j] = (prods.clone().sum::<f64>() + f64::from(case.bias[j])) as f32;
                sum_abs[i * n + j] = prods.map(f64::abs).sum();
            }
        }
        let bound = |idx: usize| gemm_bound(k, sum_abs[idx]) + 2.0 * f32::EPSILON * want[idx].abs();
        check_close("bf16 twin vs f64", &got, &want, bound, |idx| {
            format!("{} [{}, {}]", case.name(), idx / n, idx % n)
        })
        .unwrap();
    }
}

/// The twin flushes what `vdpbf16ps` flushes: denormal inputs count as zero.
#[test]
fn bf16_twin_reads_denormals_as_zero() {
    let tiny = f32::from_bits(0x0001_0000); // a bf16 denormal
    let a = [pack::bf16_from_f32(tiny) as u32 | (u32::from(pack::bf16_from_f32(1.0)) << 16)];
    let b = pack::pack_linear_weight_bf16(&[1.0, 1.0], 1, 2);
    let mut c = [f32::NAN];
    let mut p = GemmParams::new_bf16(&a, 1, 1, 2, &b, 1, &mut c, 1, Epilogue::None).unwrap();
    twin().gemm(&mut p);
    assert_eq!(c[0], 1.0, "1·1 + denormal·1 with the denormal read as zero");
}

/// Shapes bf16 operands refuse: a B of the f32 length, an A too short for its rows.
#[test]
fn bf16_params_check_lengths() {
    let b = pack::pack_linear_weight_bf16(&[0.0; 64 * 6], 64, 6);
    let a = vec![0u32; 2 * 3];
    let mut c = vec![0.0; 2 * 64];
    assert!(GemmParams::new_bf16(&a, 3, 2, 6, &b, 64, &mut c, 64, Epilogue::None).is_ok());
    assert!(GemmParams::new_bf16(&a, 3, 2, 6, &b[1..], 64, &mut c, 64, Epilogue::None).is_err());
    assert!(GemmParams::new_bf16(&a[1..], 3, 2, 6, &b, 64, &mut c, 64, Epilogue::None).is_err());
    assert!(GemmParams::new_bf16(&a, 2, 2, 6, &b, 64, &mut c, 64, Epilogue::None).is_err(), "lda < k/2");
}

/// The scalar table with the bf16 twin in its bf16 slot (the twin is a test reference,
/// never in a real table).
fn twin() -> Kernels {
    let mut k = Kernels::scalar();
    k.gemm_bf16 = Some(gemm::scalar_gemm_bf16);
    k.gemm_bf16_name = Some("scalar_gemm_bf16");
    k
}

/// Tables with each native bf16 kernel of this CPU: `vdpbf16ps` (the table of the CPU
/// without AMX), and AMX where the CPU and OS offer it (the table's choice then); the
/// tests run each.
#[cfg(target_arch = "x86_64")]
fn natives() -> Vec<(Kernels, &'static str)> {
    use crate::{Cpu, Isa};
    let cpu = Cpu::detected();
    let k = Kernels::for_cpu(Isa::Avx512, cpu).unwrap_or_else(|e| panic!("skipped: avx512 not supported ({e})"));
    if !cpu.has_avx512_bf16() {
        panic!("skipped: avx512bf16 not supported");
    }
    let vector = Kernels::for_cpu(Isa::Avx512, &cpu.without_amx()).unwrap();
    let mut v = vec![(vector, "avx512bf16_gemm_10x32")];
    if cpu.has_amx_bf16() {
        v.push((k, "amx_bf16_gemm_32x32"));
    }
    for (k, name) in &v {
        assert_eq!(k.gemm_bf16_name(), Some(*name));
    }
    assert_eq!(k.gemm_bf16_name(), Some(v.last().unwrap().1), "the table takes the best native kernel");
    v
}

/// AMX is tested wherever the CPU has it: an OS that refuses the tile state is a
/// failure to report, not a pass.
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(not(toprt_host_amx), ignore = "skipped: amx not supported")]
fn amx_is_granted_where_the_cpu_has_it() {
    assert!(crate::Cpu::detected().has_amx_bf16(), "the CPU has AMX-BF16 but the kernel did not grant the tile state");
}

/// Integer data: every m edge of the 10-row tile, partial and full panels, odd and
/// even k, every epilogue but GELU, strides padded; native == twin bit for bit.
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(not(toprt_host_avx512bf16), ignore = "skipped: avx512bf16 not supported")]
fn bf16_native_edge_shapes_exact() {
    for (kernels, name) in natives() {
        edge_shapes_exact(&kernels, name);
    }
}

/// Rows around the 10-row vector tile and the 16/32-row AMX tiles; `k` off and on the
/// AMX step of 32.
#[cfg(target_arch = "x86_64")]
fn edge_shapes_exact(kernels: &Kernels, name: &str) {
    let mut rng = Rng::new(22);
    for m in [1, 9, 10, 11, 16, 17, 23, 31, 32, 33, 65] {
        for n in [1, 16, 31, 32, 33, 3 * NR + 5] {
            for k in [1, 2, 7, 32, 64, 96, 768, 3071] {
                let case = Case::new(&mut rng, m, k, n, true, 3);
                for ep in [0, 1, 3] {
                    let at = |idx: usize| format!("{} ep {ep} [{}, {}]", case.name(), idx / n, idx % n);
                    let want = case.run(&twin(), ep, None);
                    check_bits(&format!("{name} vs twin"), &case.run(kernels, ep, None), &want, at).unwrap();
                }
            }
        }
    }
}

/// Random floats, random shapes and the BERT shapes, every epilogue, within
/// [`gemm_bound`] (GELU: times its slope, plus its own tolerance).
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(not(toprt_host_avx512bf16), ignore = "skipped: avx512bf16 not supported")]
fn bf16_native_within_tolerance() {
    for (kernels, name) in natives() {
        within_tolerance(&kernels, name);
    }
}

#[cfg(target_arch = "x86_64")]
fn within_tolerance(kernels: &Kernels, name: &str) {
    let mut rng = Rng::new(23);
    let mut shapes: Vec<(usize, usize, usize)> =
        (0..16).map(|_| (rng.usize(1..70), rng.usize(1..1000), rng.usize(1..300))).collect();
    // k a multiple of 32 (the AMX path), random m and n.
    shapes.extend((0..8).map(|_| (rng.usize(1..140), 32 * rng.usize(1..40), rng.usize(1..300))));
    shapes.extend([(128, 768, 2304), (128, 768, 768), (128, 768, 3072), (128, 3072, 768), (25, 768, 3072)]);
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let case = Case::new(&mut rng, m, k, n, false, i % 3);
        let ep = i % 4;
        let want = case.run(&twin(), ep, None);
        let got = case.run(kernels, ep, None);
        let bound = |idx: usize| {
            let (r, j) = (idx / n, idx % n);
            let sum_abs: f64 =
                (0..k).map(|kk| (f64::from(case.a32[r * k + kk]) * f64::from(case.w[kk * n + j])).abs()).sum();
            let b = gemm_bound(k, sum_abs);
            if ep == 2 {
                1.13 * b + crate::ops::GELU_TOL.bound(want[idx])
            } else {
                b + 2.0 * f32::EPSILON * want[idx].abs()
            }
        };
        let at = |idx: usize| format!("{} ep {ep} [{}, {}]", case.name(), idx / n, idx % n);
        check_close(&format!("{name} vs twin"), &got, &want, bound, at).unwrap();
    }
}

/// The invariants the engine relies on, bit for bit on random floats: a row alone
/// equals the row in a batch; any panel split and row split equals one call; the
/// blocking changes nothing.
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(not(toprt_host_avx512bf16), ignore = "skipped: avx512bf16 not supported")]
fn bf16_native_batch_split_and_blocking_invariance() {
    for (kernels, name) in natives() {
        for k in [777, 768] {
            invariance(&kernels, name, k);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn invariance(kernels: &Kernels, name: &str, k: usize) {
    let mut rng = Rng::new(24);
    let case = Case::new(&mut rng, 37, k, 9 * NR + 3, false, 2);
    for ep in 0..4 {
        let want = case.run(kernels, ep, None);
        // Each row alone.
        for i in [0, 1, 9, 10, 36] {
            let one = Case {
                m: 1,
                a: case.a[i * case.lda..i * case.lda + case.k.div_ceil(2)].to_vec(),
                a32: Vec::new(),
                res: case.res[i * case.ldc..i * case.ldc + case.n].to_vec(),
                lda: case.lda,
                ldc: case.ldc,
                b: case.b.clone(),
                w: Vec::new(),
                bias: case.bias.clone(),
                ..case
            };
            let got = one.run(kernels, ep, None);
            check_bits(&format!("{name}: row {i} alone"), &got, &want[i * case.n..(i + 1) * case.n], |j| {
                format!("ep {ep} col {j}")
            })
            .unwrap();
        }
        // Panels in uneven chunks out of order, rows in two blocks.
        let mut c = vec![f32::NAN; case.c_len()];
        {
            let mut p = case.params(&mut c, ep);
            let panels = p.panels();
            for r in [5..panels, 0..1, 1..2, 2..5] {
                // SAFETY: one call at a time.
                unsafe {
                    kernels.gemm_panels(&p.rows(0..17), r.clone());
                    kernels.gemm_panels(&p.rows(17..37), r);
                }
            }
        }
        let got: Vec<f32> = (0..case.m).flat_map(|i| c[i * case.ldc..i * case.ldc + case.n].to_vec()).collect();
        check_bits(&format!("{name}: split"), &got, &want, |idx| format!("ep {ep} {idx}")).unwrap();
        for bl in [
            Blocking { kc: 8, a_block_bytes: 12 * 8 * 4, c_group_bytes: 1, c_into_l1: false, b_into_l1: false },
            Blocking::for_caches(crate::cpu::CacheSizes { l1d: 32 << 10, l2: 512 << 10 }),
        ] {
            check_bits(&format!("{name}: {bl:?}"), &case.run(kernels, ep, Some(bl)), &want, |idx| {
                format!("ep {ep} {idx}")
            })
            .unwrap();
        }
    }
}

/// The table's activation rounding equals the twin (`pack::bf16_pairs_from_f32`) bit for
/// bit, except that an f32 denormal may become zero (every bf16 product reads a bf16
/// denormal as zero anyway); every length, so the vector body and the scalar tail both run.
#[test]
fn to_bf16_pairs_matches_the_twin() {
    let mut rng = Rng::new(25);
    for isa in [crate::Isa::Scalar, crate::Isa::Avx2, crate::Isa::Avx512] {
        let Ok(k) = Kernels::for_isa(isa) else {
            println!("skipped: {isa} not supported");
            continue;
        };
        for len in (0..70).chain([767, 768, 3072]) {
            let mut x = rng.floats(len, -4.0, 4.0);
            let specials = [f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-40, -3e-39, f32::MAX, 1.0 + 1.0 / 256.0];
            for (i, &v) in specials.iter().enumerate().filter(|(i, _)| *i < len) {
                x[(i * 7) % len] = v;
            }
            let mut want = vec![0u32; len.div_ceil(2)];
            pack::bf16_pairs_from_f32(&x, &mut want);
            let mut got = vec![u32::MAX; len.div_ceil(2)];
            k.to_bf16_pairs(&x, &mut got);
            for i in 0..len {
                let (g, w) = ((got[i / 2] >> (16 * (i % 2))) as u16, (want[i / 2] >> (16 * (i % 2))) as u16);
                let w_denormal = w & 0x7f80 == 0 && w & 0x7f != 0;
                assert!(
                    g == w || (w_denormal && g & 0x7fff == 0),
                    "{isa} len {len} [{i}]: {g:#06x} vs {w:#06x} ({})",
                    x[i]
                );
            }
            if len % 2 == 1 {
                assert_eq!(got[len / 2] >> 16, 0, "{isa}: the pad half of an odd row is zero");
            }
        }
    }
}
