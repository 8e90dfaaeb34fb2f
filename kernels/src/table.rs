//! [`Kernels`], the dispatch table: one slot per kernel family, and the safe methods
//! that are the only way to run a tier's kernels.
//!
//! A table is a capability, not a promise: it is only made by `Kernels::scalar`,
//! `Kernels::for_isa`, `Kernels::for_cpu` and `Kernels::from_env` (`isa.rs`), which
//! start from the scalar table below and let each tier file plug in its kernels after
//! checking the CPU. Its slots are crate-private, so the only SIMD code a caller can
//! reach is what a table built for this CPU holds, and the methods here run it safely.
//! The two entry points a thread pool needs, [`Kernels::gemm_panels`] and
//! [`Kernels::sgemm_bias_residual_layernorm`], are `unsafe` for one reason only: calls
//! running at the same time must write disjoint parts of `C`.

use crate::cpu::Isa;
use crate::gemm::{self, GemmFn, GemmParams, Operands};
use crate::ops::{self, EmbedAddLayerNormFn, LayerNormFn, PackRowsFn, QuantizeRowFn, ToBf16PairsFn, UnaryFn};
use std::fmt;
use std::ops::Range;

/// The dispatch table of one tier: a function pointer per kernel family, all of them
/// kernels this CPU runs. Cheap to copy; build it once per session.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub(crate) isa: Isa,
    /// Packed-weight GEMM on `f32` operands.
    pub(crate) sgemm: GemmFn,
    /// Name of the `f32` GEMM microkernel, e.g. `avx2_sgemm_6x16` (for reports).
    pub(crate) sgemm_name: &'static str,
    /// GEMM on bf16 operands ([`Operands::Bf16`]), where the CPU multiplies bf16
    /// natively on the AVX-512 tier: AMX tiles where the CPU and OS offer them
    /// (`amx_bf16_gemm_32x32`), else AVX512_BF16 (`avx512bf16_gemm_10x32`). `None`
    /// elsewhere: callers then widen bf16 weights to `f32`
    /// ([`crate::pack::widen_bf16_panels`]) and run the `f32` GEMM.
    pub(crate) gemm_bf16: Option<GemmFn>,
    /// Name of the bf16 microkernel, e.g. `avx512bf16_gemm_10x32`.
    pub(crate) gemm_bf16_name: Option<&'static str>,
    /// Rounds a row of activations to bf16 pairs, the `A` operand of `gemm_bf16`.
    pub(crate) to_bf16_pairs: ToBf16PairsFn,
    /// Packs strided rows as the panel operand of their transpose
    /// ([`crate::pack::pack_rows_panel32`]).
    pub(crate) pack_rows: PackRowsFn,
    /// GEMM on int8 operands ([`Operands::Int8`]): on every tier, from the scalar twin
    /// up to AMX tiles.
    pub(crate) gemm_i8: GemmFn,
    /// Name of the int8 microkernel, e.g. `avx512vnni_gemm_i8_8x32`.
    pub(crate) gemm_i8_name: &'static str,
    /// Quantises a row of activations for `gemm_i8` ([`crate::pack::quantize_row_i8`]).
    pub(crate) quantize_row: QuantizeRowFn,
    pub(crate) layernorm: LayerNormFn,
    pub(crate) softmax: UnaryFn,
    pub(crate) gelu: UnaryFn,
    pub(crate) embed_add_layernorm: EmbedAddLayerNormFn,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("isa", &self.isa)
            .field("sgemm", &self.sgemm_name)
            .field("gemm_bf16", &self.gemm_bf16_name)
            .field("gemm_i8", &self.gemm_i8_name)
            .finish_non_exhaustive()
    }
}

impl Kernels {
    /// The portable table: every slot holds the scalar twin, and there is no bf16 GEMM.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            sgemm: gemm::scalar_sgemm_packed,
            sgemm_name: "scalar_sgemm_packed",
            gemm_bf16: None,
            gemm_bf16_name: None,
            to_bf16_pairs: crate::pack::bf16_pairs_from_f32,
            pack_rows: crate::pack::pack_rows_panel32,
            gemm_i8: gemm::scalar_gemm_i8,
            gemm_i8_name: "scalar_gemm_i8",
            quantize_row: crate::pack::quantize_row_i8,
            layernorm: ops::layernorm_scalar,
            softmax: ops::softmax_scalar,
            gelu: ops::gelu_slice_scalar,
            embed_add_layernorm: ops::embed_add_layernorm_scalar,
        }
    }

    /// The tier of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The `f32` GEMM microkernel, e.g. `avx512_sgemm_10x32`.
    pub fn sgemm_name(&self) -> &'static str {
        self.sgemm_name
    }

    /// The bf16 GEMM microkernel, e.g. `amx_bf16_gemm_32x32`; `None` without one.
    pub fn gemm_bf16_name(&self) -> Option<&'static str> {
        self.gemm_bf16_name
    }

    /// The int8 GEMM microkernel, e.g. `avx512vnni_gemm_i8_8x32`; every table has one.
    pub fn gemm_i8_name(&self) -> &'static str {
        self.gemm_i8_name
    }

    /// Whether this table multiplies bf16 operands natively ([`Operands::Bf16`] GEMMs).
    /// Without it, callers widen bf16 weights to `f32` instead
    /// ([`crate::pack::widen_bf16_panels`]).
    pub fn has_gemm_bf16(&self) -> bool {
        self.gemm_bf16.is_some()
    }

    /// The GEMM kernel for the operands of `p`.
    ///
    /// # Panics
    /// For bf16 operands on a table without a bf16 GEMM (a caller bug: such callers
    /// widen the weights instead).
    fn gemm_fn(&self, p: &GemmParams) -> GemmFn {
        match p.operands() {
            Operands::F32 => self.sgemm,
            Operands::Bf16 => self.gemm_bf16.unwrap_or_else(|| panic!("no bf16 GEMM on the {} tier", self.isa)),
            Operands::Int8 => self.gemm_i8,
        }
    }

    /// `C = A·B (+ epilogue)` of `p`, all of it, on this thread.
    ///
    /// # Panics
    /// For bf16 operands on a table without a bf16 GEMM ([`Kernels::has_gemm_bf16`]).
    pub fn gemm(&self, p: &mut GemmParams) {
        let kernel = self.gemm_fn(p);
        // SAFETY: every panel is in range; the table holds kernels of this CPU; `p` is
        // borrowed exclusively, so no other call writes its `C` meanwhile.
        unsafe { kernel(p, 0..p.panels()) }
    }

    /// The columns of the column panels `panels` of `p` (all rows): what one thread
    /// computes when a pool splits a GEMM by panels. Each output element is computed
    /// the same way whatever the split, so any split gives the bits of [`Kernels::gemm`].
    ///
    /// # Safety
    /// Calls that may run at the same time on `p` (or on row views of the same call,
    /// [`GemmParams::rows`]) must write disjoint parts of `C`: disjoint panel ranges of
    /// the same rows, or disjoint rows.
    ///
    /// # Panics
    /// If `panels` ends past [`GemmParams::panels`], or as [`Kernels::gemm`].
    pub unsafe fn gemm_panels(&self, p: &GemmParams, panels: Range<usize>) {
        assert!(panels.end <= p.panels(), "panels {panels:?} outside 0..{}", p.panels());
        let kernel = self.gemm_fn(p);
        // SAFETY: panels in range (asserted); the table holds kernels of this CPU; the
        // disjointness of concurrent writes is the caller's contract.
        unsafe { kernel(p, panels) }
    }

    /// `C[rows] = LayerNorm(A·W ⊕ epilogue)[rows]` over **all** column panels: the
    /// GEMM with `p`'s epilogue (for BERT's `LN(x + A·W + b)`,
    /// [`crate::gemm::Epilogue::BiasResidual`]), then [`Kernels::layernorm`] of each
    /// row, block by block of [`gemm::LN_BLOCK_ROWS`] rows while the block is still in
    /// cache. The result is bit-identical to [`Kernels::gemm`] followed by
    /// [`Kernels::layernorm`] of each row; it saves the second pass over `C` from memory.
    ///
    /// A pool splits the call by row blocks (each task owns whole rows); with one
    /// thread, pass `0..p.m()`.
    ///
    /// # Safety
    /// Calls that may run at the same time on `p` must write disjoint rows of `C` (and
    /// no other call writes these rows meanwhile, see [`Kernels::gemm_panels`]).
    ///
    /// # Panics
    /// If `ln_w` or `ln_b` is shorter than `n`, or `rows` is outside `0..m`.
    pub unsafe fn sgemm_bias_residual_layernorm(
        &self,
        p: &GemmParams,
        ln_w: &[f32],
        ln_b: &[f32],
        eps: f32,
        rows: Range<usize>,
    ) {
        assert!(ln_w.len() >= p.n() && ln_b.len() >= p.n(), "LayerNorm weight / bias shorter than n = {}", p.n());
        // SAFETY: forwarded contract; the slots of `self` belong to this CPU's tier.
        unsafe { gemm::gemm_rows_then(self.gemm_fn(p), p, rows, &mut |_, row| self.layernorm(row, ln_w, ln_b, eps)) }
    }

    /// `C[rows] = A·W ⊕ epilogue` over **all** column panels, then `post(i, row i of C)`
    /// for each of those rows, block by block of [`gemm::LN_BLOCK_ROWS`] rows while the
    /// block is still in cache: [`Kernels::sgemm_bias_residual_layernorm`] with any
    /// per-row operation (LayerNorm and int8 quantisation of the row, say).
    ///
    /// # Safety
    /// As [`Kernels::sgemm_bias_residual_layernorm`].
    ///
    /// # Panics
    /// If `rows` is outside `0..m`.
    pub unsafe fn gemm_rows_then(&self, p: &GemmParams, rows: Range<usize>, post: &mut dyn FnMut(usize, &mut [f32])) {
        // SAFETY: forwarded contract; the slots of `self` belong to this CPU's tier.
        unsafe { gemm::gemm_rows_then(self.gemm_fn(p), p, rows, post) }
    }

    /// LayerNorm of one row in place: `x = (x - mean) / sqrt(var + eps) · w + b`. `w`
    /// and `b` hold at least `x.len()` values.
    ///
    /// # Panics
    /// On the SIMD tiers, if `w` or `b` is shorter than `x`.
    #[inline]
    pub fn layernorm(&self, x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.layernorm)(x, w, b, eps) }
    }

    /// Softmax of one row in place (max-subtracted; a row of `-inf` gives zeros).
    #[inline]
    pub fn softmax(&self, x: &mut [f32]) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.softmax)(x) }
    }

    /// Exact-erf GELU of a slice in place.
    #[inline]
    pub fn gelu(&self, x: &mut [f32]) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.gelu)(x) }
    }

    /// `out = LayerNorm(word + pos + typ)` for one token. The input rows, `w` and `b`
    /// hold at least `out.len()` values.
    ///
    /// # Panics
    /// If an input row is shorter than `out`, and on the SIMD tiers if `w` or `b` is.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn embed_add_layernorm(
        &self,
        out: &mut [f32],
        word: &[f32],
        pos: &[f32],
        typ: &[f32],
        w: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.embed_add_layernorm)(out, word, pos, typ, w, b, eps) }
    }

    /// Quantises a row of activations for an int8 GEMM ([`crate::pack::quantize_row_i8`]):
    /// writes the bytes `q + 128` four to a word (128 after `x.len()` up to the end of
    /// `out`) and returns the row's scale. Every tier writes the same bytes and scale.
    ///
    /// # Panics
    /// If `out` is shorter than `ceil(x.len() / 4)`.
    #[inline]
    pub fn quantize_row(&self, x: &[f32], out: &mut [u32]) -> f32 {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.quantize_row)(x, out) }
    }

    /// Rounds a row of activations to bf16 pairs (`ceil(len/2)` words, nearest even),
    /// the `A` operand of a bf16 GEMM ([`crate::pack::bf16_pairs_from_f32`]; AVX512_BF16
    /// uses `vcvtne2ps2bf16`, which also turns f32 denormals into zero).
    ///
    /// # Panics
    /// If `out` is shorter than `ceil(x.len() / 2)`.
    #[inline]
    pub fn to_bf16_pairs(&self, x: &[f32], out: &mut [u32]) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.to_bf16_pairs)(x, out) }
    }

    /// Packs `rows` rows of `k` values `ld` apart as the `f32` GEMM's `B` operand of
    /// their transpose, `[k, rows]` (attention's `kᵀ`): exactly
    /// [`crate::pack::pack_rows_panel32`], on every tier.
    ///
    /// # Panics
    /// As [`crate::pack::pack_rows_panel32`].
    #[inline]
    pub fn pack_rows(&self, src: &[f32], ld: usize, rows: usize, k: usize, dst: &mut [f32]) {
        // SAFETY: the table holds kernels of this CPU.
        unsafe { (self.pack_rows)(src, ld, rows, k, dst) }
    }
}
