//! [`AVec`]: a fixed-length, zeroed buffer whose first element is 64-byte aligned, the
//! one aligned buffer type of toprt (the engine's workspace, a model held in memory).
//!
//! The workspace's activation buffers are GEMM operands and outputs. A heap `Vec<f32>`
//! of that size comes from `mmap` through glibc 16 bytes past a page boundary, so every
//! 64-byte vector load, store and AMX tile row of it straddles two cache lines; on a
//! Sapphire Rapids core that halved the AMX GEMM (1280 vs 560 GFLOP/s on 128×768×768,
//! measured). With the buffer aligned and row strides a multiple of 16 floats (every
//! BERT width), each row starts on a line.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: plain bytes, no padding.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Line {}

/// `len` zeroed elements of `T`, 64-byte aligned; derefs to `[T]`.
pub struct AVec<T> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: bytemuck::Pod> AVec<T> {
    /// `len` zeroed elements.
    ///
    /// # Panics
    /// If the size of `T` does not divide 64 bytes (never for `u8`, `f32`, `u32`), or
    /// on overflow.
    pub fn zeroed(len: usize) -> AVec<T> {
        assert!(64 % std::mem::size_of::<T>() == 0, "element size must divide 64");
        let bytes = len.checked_mul(std::mem::size_of::<T>()).expect("buffer size overflows");
        AVec { lines: vec![Line([0; 64]); bytes.div_ceil(64)], len, _t: PhantomData }
    }
}

impl<T: bytemuck::Pod> Deref for AVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &bytemuck::cast_slice::<Line, T>(&self.lines)[..self.len]
    }
}

impl<T: bytemuck::Pod> DerefMut for AVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut::<Line, T>(&mut self.lines)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_sized() {
        for len in [0usize, 1, 15, 16, 17, 1 << 20] {
            let mut v = AVec::<f32>::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            assert_eq!(v.as_ptr() as usize % 64, 0, "len {len}");
            v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
        assert_eq!(AVec::<u32>::zeroed(33).as_ptr() as usize % 64, 0);
        for len in [0usize, 1, 63, 64, 65, 4097] {
            let v = AVec::<u8>::zeroed(len);
            assert_eq!((v.len(), v.as_ptr() as usize % 64), (len, 0), "u8 len {len}");
        }
    }
}
