//! Named tolerances: how far a SIMD tier may be from the scalar twin, per operation.
//! Each constant documents why it has its value where it is defined.

use std::fmt;

/// `|got - want| <= abs + rel·|want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub abs: f32,
    pub rel: f32,
}

impl Tol {
    /// The allowed error around `want`.
    pub fn bound(self, want: f32) -> f32 {
        self.abs + self.rel * want.abs()
    }

    /// Whether `got` is within the tolerance of `want` (NaN never is).
    pub fn accepts(self, got: f32, want: f32) -> bool {
        (got - want).abs() <= self.bound(want)
    }
}

impl fmt::Display for Tol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "abs {:e} + rel {:e}", self.abs, self.rel)
    }
}
