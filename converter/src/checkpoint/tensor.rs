//! What every checkpoint reader returns: named tensors whose floating-point payloads are
//! already `f32`. A leaf module, so that the readers and the folder loader that calls
//! them both depend on it and never on each other.

/// Tensor payload: floats are converted to `f32`; other dtypes are kept by name only
/// (a state dict's integer buffers are never weights).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    Other(String),
}

/// One named checkpoint tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}
