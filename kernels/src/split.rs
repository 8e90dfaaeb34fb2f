//! One way to split work: `len` items cut into contiguous pieces whose sizes differ by
//! at most one, the larger pieces first (ggml's `balance211`).
//!
//! Every split of toprt goes through here: the GEMM driver's row blocks, and the
//! engine's split of rows, panels and heads across its threads. One rule means one set
//! of edge cases (`parts > len`, `len = 0`) handled once, and splits that cannot drift
//! apart. A split never changes a result: it only decides who computes which item.
//!
//! ```text
//!   balanced(10, 4, i):   i = 0     1     2     3
//!                         0..3  3..6  6..8  8..10      sizes 3 3 2 2
//! ```

use std::ops::Range;

/// Piece `i` of `0..len` cut into `parts` contiguous pieces whose sizes differ by at
/// most one, the larger first. The pieces of `i = 0..parts` cover `0..len` in order,
/// without overlap; with `parts > len` the last `parts - len` pieces are empty.
///
/// # Panics
/// If `parts` is 0.
#[inline]
pub fn balanced(len: usize, parts: usize, i: usize) -> Range<usize> {
    let (base, extra) = (len / parts, len % parts);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// The non-empty pieces of `0..len` cut into at most `parts` balanced pieces
/// ([`balanced`]): `min(parts, len)` ranges, in order, covering `0..len` exactly (none
/// for `len = 0`).
///
/// # Panics
/// If `parts` is 0 and `len` is not.
pub fn chunks(len: usize, parts: usize) -> impl ExactSizeIterator<Item = Range<usize>> + Clone {
    assert!(parts > 0 || len == 0, "{len} items cannot be split into 0 parts");
    let n = parts.min(len);
    (0..n).map(move |i| balanced(len, n, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every piece list covers `0..len` exactly, in order, with sizes differing by at
    /// most one and the larger first.
    fn check(len: usize, pieces: &[Range<usize>]) {
        let mut next = 0;
        for r in pieces {
            assert_eq!(r.start, next, "len {len}: {pieces:?} leaves a gap or overlaps");
            next = r.end;
        }
        assert_eq!(next, len, "len {len}: {pieces:?} does not end at len");
        let sizes: Vec<usize> = pieces.iter().map(|r| r.len()).collect();
        let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
        if let (Some(min), Some(max)) = (min, max) {
            assert!(max - min <= 1, "len {len}: sizes {sizes:?} differ by more than one");
        }
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "len {len}: sizes {sizes:?} not larger first");
    }

    #[test]
    fn balanced_covers_exactly_and_evenly() {
        for len in 0..70 {
            for parts in 1..20 {
                let pieces: Vec<_> = (0..parts).map(|i| balanced(len, parts, i)).collect();
                check(len, &pieces);
                if parts > len {
                    assert!(pieces[len..].iter().all(|r| r.is_empty()), "len {len} parts {parts}: {pieces:?}");
                }
            }
        }
        assert_eq!(balanced(10, 4, 0), 0..3);
        assert_eq!(balanced(10, 4, 3), 8..10);
        // The GEMM driver's row blocks: 1000 rows in 3 blocks.
        assert_eq!((0..3).map(|i| balanced(1000, 3, i)).collect::<Vec<_>>(), [0..334, 334..667, 667..1000]);
    }

    #[test]
    fn chunks_are_non_empty_and_at_most_parts() {
        for len in 0..70 {
            for parts in 1..20 {
                let pieces: Vec<_> = chunks(len, parts).collect();
                check(len, &pieces);
                assert_eq!(pieces.len(), parts.min(len), "len {len} parts {parts}");
                assert!(pieces.iter().all(|r| !r.is_empty()));
                assert_eq!(chunks(len, parts).len(), pieces.len());
            }
        }
        assert_eq!(chunks(0, 0).count(), 0);
        assert_eq!(chunks(3, 8).collect::<Vec<_>>(), [0..1, 1..2, 2..3]);
    }

    #[test]
    #[should_panic(expected = "cannot be split into 0 parts")]
    fn chunks_of_something_into_nothing_panics() {
        let _ = chunks(5, 0);
    }
}
