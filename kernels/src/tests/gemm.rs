//! GEMM tier tests (instantiated per tier by `tier_tests!`).

use super::support::{check_bits, check_close, Rng, Tier};
use crate::gemm::{Epilogue, GemmParams};
use crate::pack::{self, NR};
use crate::tol::Tol;
use crate::Kernels;

/// Tolerance of a GEMM tier against the scalar twin on random floats: each side is a
/// length-`k` dot product whose rounding error is at most `(k+1)·u·Σ|a·b|` (Higham,
/// Accuracy and Stability, §3.1; `u = 2^-24`), one rounding order with FMA, the other
/// with separate multiply and add, so they may differ by twice that. A worst-case
/// bound, so it never flakes; indexing mistakes are caught *exactly* by the integer
/// tests, where every product and sum is representable.
pub(super) fn gemm_bound(k: usize, sum_abs: f64) -> f32 {
    (2.0 * (k as f64 + 2.0) * f64::from(f32::EPSILON / 2.0) * sum_abs) as f32 + f32::MIN_POSITIVE
}

/// Tolerance of the fused GELU epilogue: the pre-activation differs within
/// [`gemm_bound`], GELU's slope is at most 1.13, then [`crate::ops::GELU_TOL`].
const GELU_SLOPE: f32 = 1.13;

/// The operands of one GEMM test case.
struct Case {
    m: usize,
    k: usize,
    n: usize,
    lda: usize,
    ldc: usize,
    a: Vec<f32>,
    /// Packed weight.
    b: Vec<f32>,
    /// Logical weight `[k, n]` (for the f64 reference).
    w: Vec<f32>,
    bias: Vec<f32>,
    res: Vec<f32>,
    ldr: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ep {
    None,
    Bias,
    BiasGelu,
    BiasResidual,
}

const ALL_EPS: [Ep; 4] = [Ep::None, Ep::Bias, Ep::BiasGelu, Ep::BiasResidual];

impl Case {
    /// Integer data (exact arithmetic) or uniform floats, with row strides padded.
    fn new(rng: &mut Rng, m: usize, k: usize, n: usize, ints: bool, pad: usize) -> Case {
        let (lda, ldc, ldr) = (k + pad, n + pad, n + 2 * pad);
        let mut gen = |len: usize| if ints { rng.ints(len, -3, 3) } else { rng.floats(len, -1.0, 1.0) };
        let a = gen(m.saturating_sub(1) * lda + k);
        let wt = gen(n * k); // [n, k] like nn.Linear
        let bias = gen(n);
        let res = gen(m.saturating_sub(1) * ldr + n);
        let b = pack::pack_linear_weight(&wt, n, k);
        let mut w = vec![0.0; k * n];
        for o in 0..n {
            for kk in 0..k {
                w[kk * n + o] = wt[o * k + kk];
            }
        }
        Case { m, k, n, lda, ldc, a, b, w, bias, res, ldr }
    }

    fn epilogue(&self, ep: Ep) -> Epilogue<'_> {
        match ep {
            Ep::None => Epilogue::None,
            Ep::Bias => Epilogue::Bias(&self.bias),
            Ep::BiasGelu => Epilogue::BiasGelu(&self.bias),
            Ep::BiasResidual => Epilogue::BiasResidual { bias: &self.bias, residual: &self.res, ldr: self.ldr },
        }
    }

    fn c_len(&self) -> usize {
        self.m.saturating_sub(1) * self.ldc + self.n
    }

    /// Runs `kernels` into a C prefilled with NaN (plus a NaN margin after it).
    fn run(&self, kernels: &Kernels, ep: Ep) -> Vec<f32> {
        let mut c = vec![f32::NAN; self.c_len() + 8];
        let len = self.c_len();
        let mut p = GemmParams::new(
            &self.a,
            self.lda,
            self.m,
            self.k,
            &self.b,
            self.n,
            &mut c[..len],
            self.ldc,
            self.epilogue(ep),
        )
        .unwrap();
        kernels.gemm(&mut p);
        c
    }

    /// Σ|a·b| per output (for [`gemm_bound`]).
    fn sum_abs(&self, i: usize, j: usize) -> f64 {
        (0..self.k).map(|kk| (f64::from(self.a[i * self.lda + kk]) * f64::from(self.w[kk * self.n + j])).abs()).sum()
    }

    fn name(&self) -> String {
        format!("{}×{}×{} (lda {}, ldc {})", self.m, self.k, self.n, self.lda, self.ldc)
    }
}

/// Only `[m, n]` of C is written: the gaps between rows and the margin after keep NaN.
fn check_untouched_outside(case: &Case, c: &[f32]) -> Result<(), String> {
    for (idx, v) in c.iter().enumerate() {
        let (i, j) = (idx / case.ldc, idx % case.ldc);
        let inside = i < case.m && j < case.n;
        if !inside && !v.is_nan() {
            return Err(format!("{}: wrote {v} outside [m, n] at flat index {idx} (row {i}, col {j})", case.name()));
        }
    }
    Ok(())
}

/// The valid `[m, n]` part of C, row-major.
fn valid(case: &Case, c: &[f32]) -> Vec<f32> {
    (0..case.m).flat_map(|i| c[i * case.ldc..i * case.ldc + case.n].to_vec()).collect()
}

/// Exact comparison (integer data) of the tier with the scalar twin, plus the checks
/// that C is fully overwritten and nothing outside is touched.
fn exact_case(t: &Tier, case: &Case, ep: Ep) {
    let want = case.run(&Kernels::scalar(), ep);
    let got = case.run(&t.kernels, ep);
    let at = |idx: usize| format!("{} {ep:?} [{}, {}]", case.name(), idx / case.n, idx % case.n);
    let (g, w) = (valid(case, &got), valid(case, &want));
    assert!(w.iter().all(|v| v.is_finite()), "scalar twin left NaN in {}", case.name());
    check_bits(&format!("{} vs scalar", t.name), &g, &w, at).unwrap();
    check_untouched_outside(case, &got).unwrap();
}

/// Tolerance comparison (random floats) with the scalar twin.
fn close_case(t: &Tier, case: &Case, ep: Ep) {
    let want = valid(case, &case.run(&Kernels::scalar(), ep));
    let got = case.run(&t.kernels, ep);
    check_untouched_outside(case, &got).unwrap();
    let got = valid(case, &got);
    let n = case.n;
    let bound = |idx: usize| {
        let b = gemm_bound(case.k, case.sum_abs(idx / n, idx % n));
        match ep {
            Ep::BiasGelu => GELU_SLOPE * b + crate::ops::GELU_TOL.bound(want[idx]),
            _ => b + 2.0 * f32::EPSILON * want[idx].abs(),
        }
    };
    let at = |idx: usize| format!("{} {ep:?} [{}, {}]", case.name(), idx / n, idx % n);
    check_close(&format!("{} vs scalar", t.name), &got, &want, bound, at).unwrap();
}

pub fn m0_is_a_noop(t: &Tier) {
    let mut rng = Rng::new(1);
    let b = pack::pack_linear_weight(&rng.floats(40 * 8, -1.0, 1.0), 40, 8);
    let mut c = vec![f32::NAN; 16];
    let mut p = GemmParams::new(&[], 8, 0, 8, &b, 40, &mut c, 40, Epilogue::None).unwrap();
    t.gemm(&mut p);
    assert!(c.iter().all(|v| v.is_nan()), "{}: m = 0 wrote to C", t.name);
}

/// m ∈ {1, MR−1, MR, MR+1, 2MR+3} × n ∈ {1, 31, 32, 33, 3·32+5} × k ∈ {1, 7, 64, 384,
/// 768, 3072}, exact.
pub fn edge_shapes_exact(t: &Tier) {
    let mut rng = Rng::new(2);
    for m in t.edge_ms() {
        for n in [1, 31, 32, 33, 3 * NR + 5] {
            for k in [1, 7, 64, 384, 768, 3072] {
                exact_case(t, &Case::new(&mut rng, m, k, n, true, 3), Ep::None);
            }
        }
    }
}

/// The wide n ∈ {768, 2304}: every m edge for small k, and large k for two m.
pub fn large_edge_shapes_exact(t: &Tier) {
    let mut rng = Rng::new(3);
    for n in [768, 2304] {
        for m in t.edge_ms() {
            for k in [1, 7, 64] {
                exact_case(t, &Case::new(&mut rng, m, k, n, true, 1), Ep::None);
            }
        }
        for m in [1, t.mr + 1] {
            for k in [384, 768, 3072] {
                exact_case(t, &Case::new(&mut rng, m, k, n, true, 0), Ep::None);
            }
        }
    }
}

/// Bias and BiasResidual on integer data are exact; partial panels and padded strides.
pub fn epilogues_exact(t: &Tier) {
    let mut rng = Rng::new(4);
    for m in t.edge_ms() {
        for n in [1, 31, 33, 3 * NR + 5] {
            for k in [7, 64] {
                let case = Case::new(&mut rng, m, k, n, true, 5);
                exact_case(t, &case, Ep::Bias);
                exact_case(t, &case, Ep::BiasResidual);
            }
        }
    }
}

pub fn bias_gelu_within_tolerance(t: &Tier) {
    let mut rng = Rng::new(5);
    for m in t.edge_ms() {
        for n in [1, 33, 3 * NR + 5] {
            for k in [7, 384] {
                close_case(t, &Case::new(&mut rng, m, k, n, false, 2), Ep::BiasGelu);
            }
        }
    }
}

/// A starting at every offset 0..16 floats (so rows start at every alignment), lda ≠ k,
/// C and B at offsets too.
pub fn alignment_offsets(t: &Tier) {
    let mut rng = Rng::new(6);
    let (m, k, n) = (2 * t.mr + 3, 64, 3 * NR + 5);
    let case = Case::new(&mut rng, m, k, n, true, 3);
    let want = case.run(&Kernels::scalar(), Ep::BiasResidual);
    for off in 0..16 {
        let mut a = vec![f32::NAN; off];
        a.extend_from_slice(&case.a);
        let mut b = vec![f32::NAN; off];
        b.extend_from_slice(&case.b);
        let mut c = vec![f32::NAN; off + case.c_len()];
        let ep = case.epilogue(Ep::BiasResidual);
        let mut p = GemmParams::new(&a[off..], case.lda, m, k, &b[off..], n, &mut c[off..], case.ldc, ep).unwrap();
        t.gemm(&mut p);
        let at = |idx: usize| format!("offset {off}: [{}, {}]", idx / n, idx % n);
        check_bits(&t.name, &valid(&case, &c[off..]), &valid(&case, &want), at).unwrap();
    }
}

/// Random shapes and floats within [`gemm_bound`], every epilogue.
pub fn random_shapes_within_tolerance(t: &Tier) {
    let mut rng = Rng::new(7);
    for i in 0..24 {
        let (m, k, n) = (rng.usize(1..70), rng.usize(1..1000), rng.usize(1..300));
        let case = Case::new(&mut rng, m, k, n, false, i % 4);
        close_case(t, &case, ALL_EPS[i % 4]);
    }
}

/// BERT-base shapes: QKV, attention output, FFN in, FFN out (128 tokens).
pub fn bert_shapes_within_tolerance(t: &Tier) {
    let mut rng = Rng::new(8);
    for (m, k, n, ep) in [
        (128, 768, 2304, Ep::Bias),
        (128, 768, 768, Ep::BiasResidual),
        (128, 768, 3072, Ep::BiasGelu),
        (128, 3072, 768, Ep::BiasResidual),
    ] {
        close_case(t, &Case::new(&mut rng, m, k, n, false, 0), ep);
    }
}

/// More rows than one row block and more k than one k block (balanced splits of both).
pub fn many_row_and_k_blocks(t: &Tier) {
    let mut rng = Rng::new(9);
    // k = 2·KC + 5 gives three balanced k blocks; m = 2·MC + 7 three row blocks. Without
    // a blocking of ours: three of the portable tier's fixed k chunks, over 64 rows.
    let (m, k) = match t.blocking {
        None => (70, 2 * crate::gemm::portable::KC + 5),
        Some(b) => {
            let k = 2 * b.kc + 5;
            (2 * t.blocks(k).map_or(0, |(mc, _)| mc) + 7, k)
        }
    };
    assert!(t.blocks(k).is_none_or(|(mc, kc)| k.div_ceil(kc) == 3 && m.div_ceil(mc) == 3), "{:?}", t.blocks(k));
    for n in [45, 3 * NR + 5] {
        let case = Case::new(&mut rng, m, k, n, true, 1);
        exact_case(t, &case, Ep::BiasResidual);
    }
}

/// The blocking only reorders independent work: the tier's own blocking, tiny blocks
/// (many row and `k` blocks, one-panel groups) and the blockings derived for other
/// cache sizes give the same bits, for every epilogue.
pub fn blocking_never_changes_bits(t: &Tier) {
    use crate::cpu::CacheSizes;
    use crate::gemm::Blocking;
    if t.blocking.is_none() {
        println!("{}: no blocking of ours to vary (the scalar twin, or the portable tier's crate)", t.name);
        return;
    }
    let blockings = [
        Blocking { kc: 8, a_block_bytes: 12 * 8 * 4, c_group_bytes: 1, c_into_l1: false, b_into_l1: false },
        Blocking {
            kc: 100,
            a_block_bytes: 50 * 100 * 4,
            c_group_bytes: 3 * 50 * NR * 4,
            c_into_l1: false,
            b_into_l1: false,
        },
        Blocking::for_caches(CacheSizes { l1d: 32 << 10, l2: 256 << 10 }),
        Blocking::for_caches(CacheSizes { l1d: 32 << 10, l2: 512 << 10 }),
        Blocking::for_caches(CacheSizes { l1d: 48 << 10, l2: 2 << 20 }),
    ];
    let mut rng = Rng::new(15);
    for (m, k, n) in [(37, 777, 3 * NR + 5), (129, 300, 70), (3, 2100, 40)] {
        let case = Case::new(&mut rng, m, k, n, false, 1);
        for ep in ALL_EPS {
            let want = valid(&case, &case.run(&t.kernels, ep));
            for bl in blockings {
                let mut c = vec![f32::NAN; case.c_len()];
                let mut p = GemmParams::new(&case.a, case.lda, m, k, &case.b, n, &mut c, case.ldc, case.epilogue(ep))
                    .unwrap()
                    .with_blocking(bl);
                t.gemm(&mut p);
                let at = |idx: usize| format!("{} {ep:?} {bl:?} [{}, {}]", case.name(), idx / n, idx % n);
                check_bits(&format!("{}: blocking", t.name), &valid(&case, &c), &want, at).unwrap();
            }
        }
    }
}

/// C full of NaN is fully overwritten for every epilogue (beta = 0 never reads C).
pub fn nan_in_c_is_overwritten(t: &Tier) {
    let mut rng = Rng::new(10);
    for ep in ALL_EPS {
        for (m, k, n) in [(t.mr + 1, 300, 33), (3, 1, 70), (2 * t.mr + 3, 520, 101)] {
            let case = Case::new(&mut rng, m, k, n, false, 2);
            let c = case.run(&t.kernels, ep);
            let v = valid(&case, &c);
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                panic!("{}: {} {ep:?}: C[{}, {}] = {} after the GEMM", t.name, case.name(), i / n, i % n, v[i]);
            }
            check_untouched_outside(&case, &c).unwrap();
        }
    }
}

/// Each row of an m = 37 or m = 130 call is bit-identical to the same row computed alone
/// (m = 1), for every epilogue: the engine's "same output alone and in any batch"
/// invariant. (37 and 130 rows sit on either side of the 64 rows where the `gemm` crate
/// under the portable tier changes its blocking; 1100 is more than two of its `k` chunks.)
pub fn row_invariance_bit_exact(t: &Tier) {
    let mut rng = Rng::new(11);
    for (m, k, n) in [(37, 384, 3 * NR + 5), (37, 768, 768), (130, 1100, 2 * NR + 7)] {
        let case = Case::new(&mut rng, m, k, n, false, 1);
        for ep in ALL_EPS {
            let all = valid(&case, &case.run(&t.kernels, ep));
            for i in 0..case.m {
                let a = &case.a[i * case.lda..i * case.lda + k];
                let res = &case.res[i * case.ldr..i * case.ldr + n];
                let ep1 = match ep {
                    Ep::None => Epilogue::None,
                    Ep::Bias => Epilogue::Bias(&case.bias),
                    Ep::BiasGelu => Epilogue::BiasGelu(&case.bias),
                    Ep::BiasResidual => Epilogue::BiasResidual { bias: &case.bias, residual: res, ldr: n },
                };
                let mut c = vec![f32::NAN; n];
                let mut p = GemmParams::new(a, k, 1, k, &case.b, n, &mut c, n, ep1).unwrap();
                t.gemm(&mut p);
                let at = |j: usize| format!("{} {ep:?}: row {i} col {j}", case.name());
                check_bits(&format!("{}: row alone vs in the batch", t.name), &c, &all[i * n..(i + 1) * n], at)
                    .unwrap();
            }
        }
    }
}

/// Splitting the panels (as the thread pool does) or the rows (`GemmParams::rows`) in
/// any way gives the same bits as one call.
pub fn panel_and_row_split_bit_exact(t: &Tier) {
    let mut rng = Rng::new(12);
    let case = Case::new(&mut rng, 41, 500, 9 * NR + 3, false, 2);
    for ep in ALL_EPS {
        let want = case.run(&t.kernels, ep);
        let panels = pack::panels(case.n);
        let mut c = vec![f32::NAN; case.c_len()];
        {
            let mut p = GemmParams::new(
                &case.a,
                case.lda,
                case.m,
                case.k,
                &case.b,
                case.n,
                &mut c,
                case.ldc,
                case.epilogue(ep),
            )
            .unwrap();
            // Panels in uneven, out-of-order chunks; rows in uneven blocks.
            for r in [5..panels, 0..1, 1..2, 2..5] {
                let rows = p.rows(0..17);
                t.gemm_panels(&rows, r.clone());
                let rows = p.rows(17..41);
                t.gemm_panels(&rows, r);
            }
        }
        let at = |idx: usize| format!("{ep:?} [{}, {}]", idx / case.n, idx % case.n);
        check_bits(&format!("{}: split vs one call", t.name), &valid(&case, &c), &valid(&case, &want), at).unwrap();
    }
}

/// `sgemm_bias_residual_layernorm` over row blocks == GEMM then `layernorm` per row.
pub fn fused_layernorm_matches_unfused(t: &Tier) {
    let mut rng = Rng::new(13);
    // The last shape gives one call several LN_BLOCK_ROWS blocks.
    let many = 2 * crate::gemm::LN_BLOCK_ROWS + 70;
    for (m, k, n) in [(37, 384, 768), (5, 64, 3 * NR + 5), (130, 96, 1024), (many, 16, NR + 8)] {
        let case = Case::new(&mut rng, m, k, n, false, 0);
        let (w, b) = (rng.floats(n, 0.5, 1.5), rng.floats(n, -0.5, 0.5));
        let mut want = case.run(&t.kernels, Ep::BiasResidual);
        for i in 0..m {
            t.kernels.layernorm(&mut want[i * case.ldc..i * case.ldc + n], &w, &b, 1e-12);
        }
        let mut c = vec![f32::NAN; case.c_len()];
        let p = GemmParams::new(&case.a, case.lda, m, k, &case.b, n, &mut c, case.ldc, case.epilogue(Ep::BiasResidual))
            .unwrap();
        let cut = m / 3;
        // SAFETY: the table is this CPU's; the two calls cover disjoint rows, in turn.
        unsafe {
            t.kernels.sgemm_bias_residual_layernorm(&p, &w, &b, 1e-12, cut..m);
            t.kernels.sgemm_bias_residual_layernorm(&p, &w, &b, 1e-12, 0..cut);
        }
        let at = |idx: usize| format!("{} [{}, {}]", case.name(), idx / n, idx % n);
        check_bits(&format!("{}: fused vs unfused", t.name), &valid(&case, &c), &valid(&case, &want), at).unwrap();
    }
}

/// The scalar twin itself against an f64 reference (the tier tests trust it).
#[test]
fn scalar_twin_matches_f64_reference() {
    let mut rng = Rng::new(14);
    for (m, k, n) in [(5, 300, 70), (1, 3072, 33), (9, 1, 1)] {
        let case = Case::new(&mut rng, m, k, n, false, 1);
        let got = valid(&case, &case.run(&Kernels::scalar(), Ep::Bias));
        let want: Vec<f32> = (0..m * n)
            .map(|idx| {
                let (i, j) = (idx / n, idx % n);
                let s: f64 =
                    (0..k).map(|kk| f64::from(case.a[i * case.lda + kk]) * f64::from(case.w[kk * n + j])).sum();
                (s + f64::from(case.bias[j])) as f32
            })
            .collect();
        let bound =
            |idx: usize| gemm_bound(k, case.sum_abs(idx / n, idx % n)) + Tol { abs: 0.0, rel: 1e-7 }.bound(want[idx]);
        check_close("scalar vs f64", &got, &want, bound, |idx| format!("{} [{}, {}]", case.name(), idx / n, idx % n))
            .unwrap();
    }
}

/// Each operand that does not fit the shape is named, with what it has and needs.
#[test]
fn params_name_the_operand_that_does_not_fit() {
    use crate::{Error, Operand};
    let (m, k, n) = (3, 5, 40);
    let b = pack::pack_linear_weight(&vec![0.0; n * k], n, k);
    let (a, bias, res) = (vec![0.0; m * k], vec![0.0; n], vec![0.0; m * n]);
    let mut c = vec![0.0; m * n];
    let ok = |e: Epilogue| GemmParams::new(&a, k, m, k, &b, n, &mut vec![0.0; m * n], n, e).map(|_| ());
    assert_eq!(ok(Epilogue::BiasResidual { bias: &bias, residual: &res, ldr: n }), Ok(()));
    let err = |r: Result<GemmParams, Error>| r.map(|_| ()).unwrap_err();
    let shape = |operand, have, need| Error::Shape { operand, have, need };
    assert_eq!(err(GemmParams::new(&a[1..], k, m, k, &b, n, &mut c, n, Epilogue::None)), shape(Operand::A, 14, 15));
    assert_eq!(
        err(GemmParams::new(&a, k - 1, m, k, &b, n, &mut c, n, Epilogue::None)),
        Error::Stride { operand: Operand::A, stride: 4, row: 5 }
    );
    assert_eq!(err(GemmParams::new(&a, k, m, k, &b[..10], n, &mut c, n, Epilogue::None)), shape(Operand::B, 10, 320));
    let mut long_b = b.clone();
    long_b.push(0.0);
    assert_eq!(err(GemmParams::new(&a, k, m, k, &long_b, n, &mut c, n, Epilogue::None)), shape(Operand::B, 321, 320));
    assert_eq!(err(GemmParams::new(&a, k, m, k, &b, n, &mut c[1..], n, Epilogue::None)), shape(Operand::C, 119, 120));
    assert_eq!(
        err(GemmParams::new(&a, k, m, k, &b, n, &mut c, n, Epilogue::Bias(&bias[1..]))),
        shape(Operand::Bias, 39, 40)
    );
    let ep = Epilogue::BiasResidual { bias: &bias, residual: &res[1..], ldr: n };
    assert_eq!(err(GemmParams::new(&a, k, m, k, &b, n, &mut c, n, ep)), shape(Operand::Residual, 119, 120));
    let ep = Epilogue::BiasResidual { bias: &bias, residual: &res, ldr: n - 1 };
    let e = err(GemmParams::new(&a, k, m, k, &b, n, &mut c, n, ep));
    assert_eq!(e, Error::Stride { operand: Operand::Residual, stride: 39, row: 40 });
    assert_eq!(e.to_string(), "the residual has a row stride of 39, shorter than its rows of 40");
    assert_eq!(shape(Operand::B, 10, 320).to_string(), "packed B has 10 elements, the GEMM's shape needs 320");
}
