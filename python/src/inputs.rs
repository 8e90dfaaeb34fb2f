//! Python inputs to engine inputs. Texts are copied into Rust strings; token ids in a
//! contiguous `uint32` or `int32` numpy array are read in place (no copy) while the
//! engine runs; any other integer array or list is converted once. Everything is
//! checked here or by the engine and refused with `toprt.InputError`, never a panic.

use crate::errors;
use numpy::prelude::*;
use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArray};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

/// One value or a list of them (the converter's `keep_ratio=0.7` or `keep_ratio=[...]`).
pub struct OneOrMany<T>(pub Vec<T>);

impl<'a, 'py, T: FromPyObjectOwned<'py>> FromPyObject<'a, 'py> for OneOrMany<T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(one) = obj.extract::<T>() {
            return Ok(OneOrMany(vec![one]));
        }
        obj.extract::<Vec<T>>().map(OneOrMany)
    }
}

/// Token ids, owned or read in place from a numpy array.
pub enum Ids<'py> {
    Owned(Vec<u32>),
    U32(PyReadonlyArray1<'py, u32>),
    /// An `int32` array already checked to hold no negative value.
    I32(PyReadonlyArray1<'py, i32>),
}

impl Ids<'_> {
    pub fn as_slice(&self) -> &[u32] {
        match self {
            Ids::Owned(v) => v,
            // Contiguity was checked when the array was taken.
            Ids::U32(a) => a.as_slice().unwrap_or(&[]),
            Ids::I32(a) => {
                let s = a.as_slice().unwrap_or(&[]);
                // SAFETY: i32 and u32 have the same size and alignment, and every value
                // was checked to be non-negative, so each reads as the same number.
                unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u32>(), s.len()) }
            }
        }
    }
}

/// One parsed input.
pub enum Item<'py> {
    Text(String),
    Pair(String, String),
    Ids { ids: Ids<'py>, types: Option<Ids<'py>> },
}

impl Item<'_> {
    pub fn as_input(&self) -> toprt::Input<'_> {
        match self {
            Item::Text(t) => toprt::Input::Text(t),
            Item::Pair(a, b) => toprt::Input::Pair(a, b),
            Item::Ids { ids, types } => {
                toprt::Input::Ids { input_ids: ids.as_slice(), token_type_ids: types.as_ref().map(|t| t.as_slice()) }
            }
        }
    }
}

/// A batch: a list of items, or the rows of one 2-D integer array.
pub enum Batch<'py> {
    Items(Vec<Item<'py>>),
    Rows { ids: Rows<'py>, width: usize },
}

pub enum Rows<'py> {
    Owned(Vec<u32>),
    U32(PyReadonlyArray2<'py, u32>),
}

impl Batch<'_> {
    /// The engine's view of the batch (borrows, no copy).
    pub fn inputs(&self) -> Vec<toprt::Input<'_>> {
        match self {
            Batch::Items(v) => v.iter().map(Item::as_input).collect(),
            Batch::Rows { ids, width } => rows_slice(ids)
                .chunks(*width)
                .map(|r| toprt::Input::Ids { input_ids: r, token_type_ids: None })
                .collect(),
        }
    }
}

fn rows_slice<'a>(r: &'a Rows<'_>) -> &'a [u32] {
    match r {
        Rows::Owned(v) => v,
        Rows::U32(a) => a.as_slice().unwrap_or(&[]),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn id_of(index: usize, position: usize, v: i128) -> PyResult<u32> {
    u32::try_from(v).map_err(|_| {
        errors::input(format!("input {index}: token id {v} at position {position} is not a valid id (0 to 2^32-1)"))
    })
}

/// Token ids from a 1-D numpy array of any integer dtype.
fn ids_from_array<'py>(index: usize, arr: &Bound<'py, PyUntypedArray>) -> PyResult<Ids<'py>> {
    if arr.ndim() != 1 {
        return Err(errors::input(format!(
            "input {index}: a token-id array must be 1-D, got {} dimensions",
            arr.ndim()
        )));
    }
    if let Ok(a) = arr.cast::<PyArray1<u32>>() {
        let r = a.readonly();
        if r.as_slice().is_ok() {
            return Ok(Ids::U32(r));
        }
        return Ok(Ids::Owned(r.as_array().iter().copied().collect()));
    }
    if let Ok(a) = arr.cast::<PyArray1<i32>>() {
        let r = a.readonly();
        if let Some((position, &v)) = r.as_array().iter().enumerate().find(|(_, &v)| v < 0) {
            return Err(errors::input(format!(
                "input {index}: token id {v} at position {position} is not a valid id (negative)"
            )));
        }
        if r.as_slice().is_ok() {
            return Ok(Ids::I32(r));
        }
        return Ok(Ids::Owned(r.as_array().iter().map(|&v| v as u32).collect()));
    }
    macro_rules! convert_from {
        ($($t:ty),*) => {$(
            if let Ok(a) = arr.cast::<PyArray1<$t>>() {
                let r = a.readonly();
                return r
                    .as_array()
                    .iter()
                    .enumerate()
                    .map(|(p, &v)| id_of(index, p, v as i128))
                    .collect::<PyResult<Vec<u32>>>()
                    .map(Ids::Owned);
            }
        )*};
    }
    convert_from!(i64, u64, i16, u16, i8, u8);
    let dtype = arr.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
    Err(errors::input(format!("input {index}: token ids must be an integer array, got dtype {dtype}")))
}

/// Token ids from a Python object: an integer numpy array or a sequence of ints.
fn ids_from<'py>(index: usize, obj: &Bound<'py, PyAny>) -> PyResult<Ids<'py>> {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        return ids_from_array(index, arr);
    }
    if obj.is_instance_of::<PyString>() {
        return Err(errors::input(format!("input {index}: expected token ids, got a str")));
    }
    let iter = obj.try_iter().map_err(|_| {
        errors::input(format!("input {index}: expected token ids (a list of ints), got {}", type_name(obj)))
    })?;
    let mut out = Vec::new();
    for (position, x) in iter.enumerate() {
        let x = x?;
        // bool is an int subclass in Python; True as a token id is a mistake.
        if x.is_instance_of::<pyo3::types::PyBool>() {
            return Err(errors::input(format!("input {index}: token id at position {position} is a bool")));
        }
        let v: i128 = x.extract().map_err(|_| {
            errors::input(format!(
                "input {index}: token id at position {position} must be an int, got {}",
                type_name(&x)
            ))
        })?;
        out.push(id_of(index, position, v)?);
    }
    Ok(Ids::Owned(out))
}

fn text_of(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if !obj.is_instance_of::<PyString>() {
        return Err(errors::input(format!("input {index}: expected str, got {}", type_name(obj))));
    }
    obj.extract::<String>().map_err(|e| errors::input(format!("input {index}: text is not valid Unicode: {e}")))
}

const EXPECTED: &str = "a str, a (text, text_pair) tuple, a list or 1-D integer array of token ids, \
    or a dict with input_ids (and token_type_ids)";

/// One input: `str`, `(str, str)`, token ids (list or 1-D integer array), or a dict
/// `{"input_ids": ..., "token_type_ids": ...}`.
pub fn item<'py>(index: usize, obj: &Bound<'py, PyAny>) -> PyResult<Item<'py>> {
    if obj.is_instance_of::<PyString>() {
        return Ok(Item::Text(text_of(index, obj)?));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(errors::input(format!(
                "input {index}: a tuple must be (text, text_pair), got {} elements",
                t.len()
            )));
        }
        return Ok(Item::Pair(text_of(index, &t.get_item(0)?)?, text_of(index, &t.get_item(1)?)?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let ids = d
            .get_item("input_ids")?
            .ok_or_else(|| errors::input(format!("input {index}: a dict input needs 'input_ids'")))?;
        let types = d.get_item("token_type_ids")?.filter(|t| !t.is_none());
        return Ok(Item::Ids { ids: ids_from(index, &ids)?, types: types.map(|t| ids_from(index, &t)).transpose()? });
    }
    if obj.is_none() {
        return Err(errors::input(format!("input {index}: got None; expected {EXPECTED}")));
    }
    if obj.cast::<PyUntypedArray>().is_ok() || obj.cast::<pyo3::types::PyList>().is_ok() {
        return Ok(Item::Ids { ids: ids_from(index, obj)?, types: None });
    }
    Err(errors::input(format!("input {index}: got {}; expected {EXPECTED}", type_name(obj))))
}

/// A batch: any iterable of inputs (list, tuple, numpy array of str, pandas Series), or
/// a 2-D integer numpy array whose rows are token-id sequences. A bare `str` is refused
/// (it would be a batch of characters).
pub fn batch<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Batch<'py>> {
    if obj.is_instance_of::<PyString>() {
        return Err(errors::input("expected a list of inputs, got a str (wrap a single text in a list)"));
    }
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        if arr.ndim() == 2 && arr.dtype().kind() != b'O' && arr.dtype().kind() != b'U' {
            let width = arr.shape()[1];
            if arr.shape()[0] == 0 {
                return Ok(Batch::Items(Vec::new()));
            }
            if width == 0 {
                return Err(errors::input("input 0: empty sequence (no tokens)"));
            }
            if let Ok(a) = arr.cast::<PyArray2<u32>>() {
                let r = a.readonly();
                if r.as_slice().is_ok() {
                    return Ok(Batch::Rows { ids: Rows::U32(r), width });
                }
            }
            let rows = arr.shape()[0];
            let mut flat = Vec::with_capacity(rows * width);
            for i in 0..rows {
                let row = arr.get_item(i)?;
                flat.extend_from_slice(ids_from(i, &row)?.as_slice());
            }
            return Ok(Batch::Rows { ids: Rows::Owned(flat), width });
        }
    }
    if obj.is_none() {
        return Err(errors::input("expected a list of inputs, got None"));
    }
    let iter =
        obj.try_iter().map_err(|_| errors::input(format!("expected a list of inputs, got {}", type_name(obj))))?;
    let mut items = Vec::new();
    for (i, x) in iter.enumerate() {
        items.push(item(i, &x?)?);
    }
    Ok(Batch::Items(items))
}
