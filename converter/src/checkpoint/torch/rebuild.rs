//! Tensors from storages: `_rebuild_tensor{,_v2,_v3}` calls become views (storage,
//! offset, shape, strides, dtype) while unpickling, and [`StorageReader`] later copies
//! each view out of its `<prefix>/data/<key>` entry into contiguous, row-major bytes.
//!
//! Non-contiguous views (transposes, strided slices) and storages shared by several
//! tensors (tied weights) are handled; every element index is checked against the
//! storage, and the bytes produced for all tensors together are limited to
//! [`MAX_EXPANSION`] times the file size plus 1 MiB, so that expanded views (stride 0)
//! cannot turn a tiny file into a huge allocation.

use std::collections::HashMap;
use std::rc::Rc;

use super::error::{perr, TorchError};
use super::value::{Global, StorageRef, TensorDesc, Value};
use super::zip::ZipArchive;
use crate::checkpoint::dtype::DType;

/// Materialized tensor bytes may total at most this many times the input
/// size (plus 1 MiB); see the module documentation.
pub const MAX_EXPANSION: u64 = 8;

/// Maximum number of tensor dimensions accepted.
const MAX_DIMS: usize = 64;

/// `('storage', storage_type, key, location, numel)`; location ignored.
pub(super) fn persistent_load(pid: &Value, at: usize) -> Result<StorageRef, TorchError> {
    let Value::Tuple(t) = pid else {
        return Err(perr(at, format!("persistent id is {}, expected a tuple", pid.kind())));
    };
    let t = t.borrow();
    let [Value::Str(tag), ty, Value::Str(key), Value::Str(_location), Value::Int(numel)] = t.as_slice() else {
        return Err(perr(at, "persistent id is not ('storage', storage_type, key, location, numel)"));
    };
    if &**tag != "storage" {
        return Err(perr(at, format!("unsupported persistent id kind '{tag}'")));
    }
    let dtype = match ty {
        Value::Global(Global::StorageType(d) | Global::DType(d)) => Some(*d),
        Value::Global(Global::UntypedStorage) => None,
        other => return Err(perr(at, format!("persistent id storage type is {}, not a storage class", other.kind()))),
    };
    let numel = u64::try_from(*numel).map_err(|_| perr(at, format!("negative storage size {numel}")))?;
    Ok(StorageRef { key: key.clone(), dtype, numel })
}

fn as_u64(v: &Value, what: &str, at: usize) -> Result<u64, TorchError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| perr(at, format!("{what} is negative ({i})"))),
        other => Err(perr(at, format!("{what} is {}, expected an int", other.kind()))),
    }
}

fn as_u64_seq(v: &Value, what: &str, at: usize) -> Result<Vec<u64>, TorchError> {
    let (Value::Tuple(s) | Value::List(s)) = v else {
        return Err(perr(at, format!("{what} is {}, expected a tuple", v.kind())));
    };
    let s = s.borrow();
    if s.len() > MAX_DIMS {
        return Err(perr(at, format!("{what} has {} dimensions (max {MAX_DIMS})", s.len())));
    }
    s.iter().map(|x| as_u64(x, what, at)).collect()
}

/// `_rebuild_tensor*(storage, offset, size, stride, ...)`: a view on `storage`; `dtype`
/// is given by `_rebuild_tensor_v3` and otherwise that of the typed storage.
pub(super) fn rebuild_tensor(
    storage: &Value,
    offset: &Value,
    size: &Value,
    stride: &Value,
    dtype: Option<DType>,
    at: usize,
) -> Result<Value, TorchError> {
    let Value::Storage(storage) = storage else {
        return Err(perr(at, format!("tensor storage is {}, not a persistent storage", storage.kind())));
    };
    let dtype = dtype
        .or(storage.dtype)
        .ok_or_else(|| perr(at, "tensor on an untyped storage without a dtype (needs _rebuild_tensor_v3)"))?;
    let offset = as_u64(offset, "storage offset", at)?;
    let shape = as_u64_seq(size, "size", at)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| perr(at, format!("dimension {d} too large"))))
        .collect::<Result<Vec<_>, _>>()?;
    let stride = as_u64_seq(stride, "stride", at)?;
    if shape.len() != stride.len() {
        return Err(perr(at, format!("size has {} dimensions but stride has {}", shape.len(), stride.len())));
    }
    Ok(Value::Tensor(Rc::new(TensorDesc { storage: storage.clone(), dtype, offset, shape, stride })))
}

/// Reads tensor views out of the storage entries of one archive.
pub(super) struct StorageReader<'z, 'a> {
    archive: &'z ZipArchive<'a>,
    prefix: &'z str,
    /// CRC-verified storage entries by key.
    cache: HashMap<Rc<str>, &'a [u8]>,
    /// Remaining bytes that may be materialized.
    budget: u64,
}

impl<'z, 'a> StorageReader<'z, 'a> {
    /// A reader of the storages `<prefix>/data/<key>` of `archive`, a file of
    /// `file_len` bytes (which sets the [`MAX_EXPANSION`] budget).
    pub(super) fn new(archive: &'z ZipArchive<'a>, prefix: &'z str, file_len: usize) -> Self {
        let budget = (file_len as u64).saturating_mul(MAX_EXPANSION).saturating_add(1 << 20);
        StorageReader { archive, prefix, cache: HashMap::new(), budget }
    }

    /// The contiguous, row-major bytes of view `t`, for tensor `name`.
    pub(super) fn materialize(&mut self, name: &str, t: &TensorDesc) -> Result<Vec<u8>, TorchError> {
        let terr = |msg: String| TorchError::Tensor { name: name.to_owned(), msg };
        let st = &t.storage;
        let raw = if let Some(r) = self.cache.get(&st.key) {
            *r
        } else {
            let entry = format!("{}/data/{}", self.prefix, st.key);
            let r = self
                .archive
                .read(&entry)?
                .ok_or_else(|| TorchError::MissingEntry { name: entry, needed_by: format!("tensor '{name}'") })?;
            self.cache.insert(st.key.clone(), r);
            r
        };
        let st_elsize = st.dtype.map_or(1, DType::size_in_bytes) as u64;
        let declared = st.numel.checked_mul(st_elsize).filter(|&b| b <= raw.len() as u64).ok_or_else(|| {
            terr(format!(
                "storage '{}' declares {} elements but its entry has only {} bytes",
                st.key,
                st.numel,
                raw.len()
            ))
        })?;
        let elsize = t.dtype.size_in_bytes();
        let capacity = declared / elsize as u64;

        let numel = t
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| terr(format!("shape {:?} overflows", t.shape)))?;
        let nbytes = numel.checked_mul(elsize as u64).ok_or_else(|| terr(format!("shape {:?} overflows", t.shape)))?;
        if nbytes > self.budget {
            return Err(terr(format!(
                "materializing {nbytes} bytes exceeds the limit ({MAX_EXPANSION}x the file size in total); \
                 expanded/overlapping views are not supported at this size"
            )));
        }
        self.budget -= nbytes;
        let nbytes = usize::try_from(nbytes).map_err(|_| terr("tensor too large".into()))?;

        let mut data = Vec::with_capacity(nbytes);
        if numel > 0 {
            // Largest element index touched by the view.
            let mut max = t.offset;
            for (&d, &s) in t.shape.iter().zip(&t.stride) {
                max = (d as u64 - 1)
                    .checked_mul(s)
                    .and_then(|x| max.checked_add(x))
                    .ok_or_else(|| terr("stride arithmetic overflows".into()))?;
            }
            if max >= capacity {
                return Err(terr(format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches element {max} but storage '{}' \
                     has {capacity} {} elements",
                    t.offset,
                    t.shape,
                    t.stride,
                    st.key,
                    t.dtype.torch_name()
                )));
            }
            let bytes = usize::try_from(declared).ok().and_then(|d| raw.get(..d)).unwrap_or(&[]);
            copy_view(bytes, elsize, t, &mut data).ok_or_else(|| terr("element out of storage bounds".into()))?;
        }
        Ok(data)
    }
}

/// Appends the elements of view `t` over `storage` (bounds already checked;
/// returns `None` instead of panicking should any index still be out of
/// range). Requires every dimension to be non-zero.
fn copy_view(storage: &[u8], elsize: usize, t: &TensorDesc, out: &mut Vec<u8>) -> Option<()> {
    let get = |elem: u64, count: u64| -> Option<&[u8]> {
        let start = usize::try_from(elem).ok()?.checked_mul(elsize)?;
        let len = usize::try_from(count).ok()?.checked_mul(elsize)?;
        storage.get(start..start.checked_add(len)?)
    };
    // Contiguous (row-major) layout: one copy. Size-1 dims' strides are free.
    let mut expected = 1u64;
    let mut contiguous = true;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
            break;
        }
        expected = expected.checked_mul(d as u64)?;
    }
    if contiguous {
        out.extend_from_slice(get(t.offset, expected)?);
        return Some(());
    }
    let (&inner_len, outer_shape) = t.shape.split_last()?;
    let (&inner_stride, outer_stride) = t.stride.split_last()?;
    let mut idx = vec![0usize; outer_shape.len()];
    loop {
        let mut base = t.offset;
        for (&i, &s) in idx.iter().zip(outer_stride) {
            base = base.checked_add((i as u64).checked_mul(s)?)?;
        }
        if inner_stride == 1 {
            out.extend_from_slice(get(base, inner_len as u64)?);
        } else {
            for i in 0..inner_len as u64 {
                out.extend_from_slice(get(base.checked_add(i.checked_mul(inner_stride)?)?, 1)?);
            }
        }
        // Odometer increment over the outer dimensions.
        let mut carried = true;
        for (i, &d) in idx.iter_mut().zip(outer_shape).rev() {
            *i += 1;
            if *i < d {
                carried = false;
                break;
            }
            *i = 0;
        }
        if carried {
            return Some(());
        }
    }
}
