//! What the kernel benches share: shapes, operands, and the calls being compared.

#![allow(dead_code)] // each bench target uses a different subset

use toprt_kernels::gemm::{Epilogue, GemmParams, Int8Scales};
use toprt_kernels::{pack, Isa, Kernels};

/// (M, K, N): BERT-base projections at 128 tokens (QKV, attention output, FFN in,
/// FFN out), ModernBERT-base's FFN out (its gated FFN's 1152 wide half), a 512-token FFN
/// in, small M (few surviving tokens) on FFN in, and MiniLM's FFN in and out on a
/// 512-row block of a 32 × 128 batch.
pub const SHAPES: [(usize, usize, usize); 11] = [
    (128, 768, 2304),
    (128, 768, 768),
    (128, 768, 3072),
    (128, 3072, 768),
    (128, 1152, 768),
    (512, 768, 3072),
    (1, 768, 3072),
    (8, 768, 3072),
    (24, 768, 3072),
    (512, 384, 1536),
    (512, 1536, 384),
];

/// What follows a BERT linear's GEMM in the model (`gemm_table --epilogues`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelEpilogue {
    /// `A·W` alone.
    None,
    /// `+ b` (the QKV projection).
    Bias,
    /// `gelu(· + b)` (the FFN's first linear).
    BiasGelu,
    /// `LN(· + b + R)` (the attention output and the FFN's second linear).
    ResidualLayerNorm,
}

/// The tiers this CPU runs, best last.
pub fn tiers() -> Vec<Kernels> {
    Isa::ALL.into_iter().filter_map(|i| Kernels::for_isa(i).ok()).collect()
}

/// Deterministic values in [-0.5, 0.5).
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A copy of a `Vec` whose first element sits on a 64-byte line, as the engine's
/// operands do (weights in the mapped file, activations in its workspace): a heap
/// `Vec` of this size starts 16 bytes past a page, and AMX tile rows or vector stores
/// that straddle lines run up to 2× slower.
pub struct A64<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> From<Vec<T>> for A64<T> {
    fn from(v: Vec<T>) -> A64<T> {
        let per_line = 64 / std::mem::size_of::<T>();
        let mut buf = vec![T::default(); v.len() + per_line];
        let off = (per_line - (buf.as_ptr() as usize / std::mem::size_of::<T>()) % per_line) % per_line;
        buf[off..off + v.len()].copy_from_slice(&v);
        A64 { buf, off, len: v.len() }
    }
}

impl<T> std::ops::Deref for A64<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl<T> std::ops::DerefMut for A64<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Copies of one weight that together outgrow any last-level cache, handed out in turn,
/// so each GEMM call streams its weight from memory as a model's forward pass does
/// (every linear's weight is read once per pass, long evicted since the last one),
/// instead of finding it in cache as a bench that repeats one call does.
pub struct ColdCopies<T> {
    buf: Vec<T>,
    /// Elements between copies: the weight's length rounded up to whole 4 KiB pages, so
    /// every copy starts on a page, as a weight in the mapped file starts on a line.
    stride: usize,
    len: usize,
    copies: usize,
    next: usize,
}

impl<T: Copy + Default> ColdCopies<T> {
    /// Bytes of all copies together.
    pub const BYTES: usize = 256 << 20;

    /// An empty set; [`ColdCopies::fill`] makes the copies.
    pub fn new() -> Self {
        ColdCopies { buf: Vec::new(), stride: 0, len: 0, copies: 0, next: 0 }
    }

    /// Replaces the copies with copies of `w` (at least two), reusing the buffer.
    pub fn fill(&mut self, w: &[T]) {
        let per_page = 4096 / std::mem::size_of::<T>();
        self.len = w.len();
        self.stride = w.len().next_multiple_of(per_page).max(per_page);
        self.copies = (Self::BYTES / (self.stride * std::mem::size_of::<T>())).max(2);
        // One page of slack to start the first copy on a page boundary.
        self.buf.resize(self.copies * self.stride + per_page, T::default());
        let off = (per_page - (self.buf.as_ptr() as usize / std::mem::size_of::<T>()) % per_page) % per_page;
        for c in 0..self.copies {
            let at = off + c * self.stride;
            self.buf[at..at + w.len()].copy_from_slice(w);
        }
        self.next = 0;
    }

    /// The next copy in turn.
    pub fn next(&mut self) -> &[T] {
        let per_page = 4096 / std::mem::size_of::<T>();
        let off = (per_page - (self.buf.as_ptr() as usize / std::mem::size_of::<T>()) % per_page) % per_page;
        let at = off + self.next * self.stride;
        self.next = (self.next + 1) % self.copies;
        &self.buf[at..at + self.len]
    }

    /// Number of copies.
    pub fn copies(&self) -> usize {
        self.copies
    }
}

impl<T: Copy + Default> Default for ColdCopies<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// One GEMM problem: activations, the weight packed for toprt and row-major for the
/// gemm crate, bias, residual and output (the toprt operands 64-byte aligned).
pub struct Problem {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: A64<f32>,
    pub packed: A64<f32>,
    /// `[k, n]` row-major.
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
    pub res: A64<f32>,
    pub c: A64<f32>,
    /// The same weight as `panel32x2` bf16, and `A` rounded to bf16 pairs.
    pub packed_bf16: A64<u32>,
    pub a_bf16: A64<u32>,
    /// The same weight quantised to int8 (`panel32x4`), and `A` quantised per row.
    pub w_i8: pack::QuantizedWeight,
    pub packed_i8: A64<u32>,
    pub a_i8: A64<u32>,
    pub a_scale: Vec<f32>,
}

impl Problem {
    pub fn new(m: usize, k: usize, n: usize) -> Problem {
        let wt = data(n * k, 2); // [n, k] like nn.Linear
        let mut w = vec![0.0; k * n];
        for o in 0..n {
            for kk in 0..k {
                w[kk * n + o] = wt[o * k + kk];
            }
        }
        let a = data(m * k, 1);
        let mut a_bf16 = vec![0u32; m * k.div_ceil(2)];
        for (row, out) in a.chunks(k.max(1)).zip(a_bf16.chunks_mut(k.div_ceil(2).max(1))) {
            pack::bf16_pairs_from_f32(row, out);
        }
        let quads = k.div_ceil(4);
        let mut a_i8 = vec![0u32; m * quads];
        let a_scale: Vec<f32> = a
            .chunks(k.max(1))
            .zip(a_i8.chunks_mut(quads.max(1)))
            .map(|(row, out)| pack::quantize_row_i8(row, out))
            .collect();
        let w_i8 = pack::quantize_linear_weight_i8(&wt, n, k);
        Problem {
            m,
            k,
            n,
            packed_i8: w_i8.packed.clone().into(),
            w_i8,
            a_i8: a_i8.into(),
            a_scale,
            packed_bf16: pack::pack_linear_weight_bf16(&wt, n, k).into(),
            a_bf16: a_bf16.into(),
            a: a.into(),
            packed: pack::pack_linear_weight(&wt, n, k).into(),
            w,
            bias: data(n, 3),
            res: data(m * n, 4).into(),
            c: vec![0.0; m * n].into(),
        }
    }

    pub fn flops(&self) -> u64 {
        2 * (self.m * self.k * self.n) as u64
    }

    /// `C = A·W` with a toprt tier, single-threaded.
    pub fn toprt(&mut self, kernels: &Kernels) {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut p = GemmParams::new(&self.a, k, m, k, &self.packed, n, &mut self.c, n, Epilogue::None).expect("shapes");
        kernels.gemm(&mut p);
    }

    /// `C = A·W` on bf16 operands with the bf16 GEMM of `kernels`, single-threaded.
    pub fn toprt_bf16(&mut self, kernels: &Kernels) {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut p = GemmParams::new_bf16(
            &self.a_bf16,
            k.div_ceil(2),
            m,
            k,
            &self.packed_bf16,
            n,
            &mut self.c,
            n,
            Epilogue::None,
        )
        .expect("shapes");
        kernels.gemm(&mut p);
    }

    /// `C = A·W` on int8 operands with the int8 GEMM of `kernels`, single-threaded.
    pub fn toprt_int8(&mut self, kernels: &Kernels) {
        let (m, k, n) = (self.m, self.k, self.n);
        let scales = Int8Scales { row: &self.a_scale, col: &self.w_i8.scale, col_sum: &self.w_i8.sum };
        let mut p = GemmParams::new_int8(
            &self.a_i8,
            k.div_ceil(4),
            m,
            k,
            &self.packed_i8,
            n,
            &mut self.c,
            n,
            Epilogue::None,
            scales,
        )
        .expect("shapes");
        kernels.gemm(&mut p);
    }

    /// [`Problem::toprt`] on the weight `w` (a cold copy of `packed`).
    pub fn toprt_on(&mut self, kernels: &Kernels, w: &[f32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut p = GemmParams::new(&self.a, k, m, k, w, n, &mut self.c, n, Epilogue::None).expect("shapes");
        kernels.gemm(&mut p);
    }

    /// [`Problem::toprt_bf16`] on the weight `w` (a cold copy of `packed_bf16`).
    pub fn toprt_bf16_on(&mut self, kernels: &Kernels, w: &[u32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut p = GemmParams::new_bf16(&self.a_bf16, k.div_ceil(2), m, k, w, n, &mut self.c, n, Epilogue::None)
            .expect("shapes");
        kernels.gemm(&mut p);
    }

    /// [`Problem::toprt_int8`] on the weight `w` (a cold copy of `packed_i8`).
    pub fn toprt_int8_on(&mut self, kernels: &Kernels, w: &[u32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let scales = Int8Scales { row: &self.a_scale, col: &self.w_i8.scale, col_sum: &self.w_i8.sum };
        let mut p = GemmParams::new_int8(&self.a_i8, k.div_ceil(4), m, k, w, n, &mut self.c, n, Epilogue::None, scales)
            .expect("shapes");
        kernels.gemm(&mut p);
    }

    /// `C = gelu(A·W + b)` (BERT FFN in).
    pub fn toprt_bias_gelu(&mut self, kernels: &Kernels) {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut p = GemmParams::new(&self.a, k, m, k, &self.packed, n, &mut self.c, n, Epilogue::BiasGelu(&self.bias))
            .expect("shapes");
        kernels.gemm(&mut p);
    }

    /// `C = LN(A·W + b + R)` (BERT FFN out / attention output), fused.
    pub fn toprt_residual_layernorm(&mut self, kernels: &Kernels, ln_w: &[f32], ln_b: &[f32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let ep = Epilogue::BiasResidual { bias: &self.bias, residual: &self.res, ldr: n };
        let p = GemmParams::new(&self.a, k, m, k, &self.packed, n, &mut self.c, n, ep).expect("shapes");
        // SAFETY: single-threaded, all rows; the table is this CPU's.
        unsafe { kernels.sgemm_bias_residual_layernorm(&p, ln_w, ln_b, 1e-12, 0..m) };
    }

    /// `C = A·W` plus the epilogue `epi` on the weight `w` (a cold copy of `packed`),
    /// with the best tier's f32 GEMM: what a BERT linear runs in the model.
    pub fn toprt_epilogue_on(&mut self, kernels: &Kernels, w: &[f32], epi: ModelEpilogue, ln: (&[f32], &[f32])) {
        let (m, k, n) = (self.m, self.k, self.n);
        let ep = match epi {
            ModelEpilogue::None => Epilogue::None,
            ModelEpilogue::Bias => Epilogue::Bias(&self.bias),
            ModelEpilogue::BiasGelu => Epilogue::BiasGelu(&self.bias),
            ModelEpilogue::ResidualLayerNorm => {
                Epilogue::BiasResidual { bias: &self.bias, residual: &self.res, ldr: n }
            }
        };
        let mut p = GemmParams::new(&self.a, k, m, k, w, n, &mut self.c, n, ep).expect("shapes");
        if epi == ModelEpilogue::ResidualLayerNorm {
            // SAFETY: single-threaded, all rows; the table is this CPU's.
            unsafe { kernels.sgemm_bias_residual_layernorm(&p, ln.0, ln.1, 1e-12, 0..m) };
        } else {
            kernels.gemm(&mut p);
        }
    }

    /// `C = A·W` with the gemm crate, single-threaded.
    pub fn gemm_crate(&mut self) {
        let (m, k, n) = (self.m, self.k, self.n);
        // SAFETY: the pointers cover m×k, k×n and m×n row-major matrices.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                self.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.a.as_ptr(),
                1,
                k as isize,
                self.w.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}
