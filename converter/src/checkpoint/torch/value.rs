//! The objects the restricted unpickler builds: Python values, references to storages,
//! tensor views not yet read, and the heap that owns every container.
//!
//! Containers are `Rc<RefCell<..>>` because pickles share them through the memo (and may
//! even make cycles). Every container is registered in a [`Heap`]; dropping the heap
//! empties all of them first, so dropping a deeply nested or cyclic graph never recurses
//! (no stack overflow) and never leaks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::checkpoint::dtype::DType;

pub(super) type Seq = Rc<RefCell<Vec<Value>>>;
pub(super) type DictRef = Rc<RefCell<DictObj>>;

/// A Python `dict` / `OrderedDict` (insertion ordered).
#[derive(Default)]
pub(super) struct DictObj {
    pub(super) entries: Vec<(Value, Value)>,
    pub(super) index: HashMap<Key, usize>,
}

/// Hashable view of a dictionary key (for overwrite-on-duplicate semantics).
#[derive(PartialEq, Eq, Hash)]
pub(super) enum Key {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

/// Whitelisted callables and type tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    Set,
    FrozenSet,
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    ParameterType,
    /// A typed storage class (`torch.FloatStorage`, ...).
    StorageType(DType),
    /// `torch.UntypedStorage` (a storage of bytes).
    UntypedStorage,
    /// A dtype object (`torch.float32`, ...).
    DType(DType),
}

/// Result of a persistent load: a reference to `<prefix>/data/<key>`.
#[derive(Debug)]
pub(super) struct StorageRef {
    pub(super) key: Rc<str>,
    /// `None` for an untyped (byte) storage.
    pub(super) dtype: Option<DType>,
    /// Number of elements (bytes for untyped storages).
    pub(super) numel: u64,
}

/// A tensor view on a storage, not yet materialized.
#[derive(Debug)]
pub(super) struct TensorDesc {
    pub(super) storage: Rc<StorageRef>,
    pub(super) dtype: DType,
    pub(super) offset: u64,
    pub(super) shape: Vec<usize>,
    pub(super) stride: Vec<u64>,
}

/// A Python value on the unpickler's stack, in its memo or inside a container.
#[derive(Clone)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Seq),
    List(Seq),
    Set(Seq),
    Dict(DictRef),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorDesc>),
}

impl Value {
    /// What the value is, for error messages ("a dict", "an int", ...).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Set(_) => "a set",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    /// The value as a dict key; `None` for unhashable values.
    pub(super) fn key(&self) -> Option<Key> {
        Some(match self {
            Value::None => Key::None,
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            _ => return None,
        })
    }
}

/// Owner of every container the unpickler creates (see the module documentation).
#[derive(Default)]
pub(super) struct Heap {
    seqs: Vec<Seq>,
    dicts: Vec<DictRef>,
}

impl Heap {
    /// A new registered tuple / list / set holding `items`.
    pub(super) fn new_seq(&mut self, items: Vec<Value>) -> Seq {
        let s = Rc::new(RefCell::new(items));
        self.seqs.push(s.clone());
        s
    }

    /// A new registered, empty dict.
    pub(super) fn new_dict(&mut self) -> DictRef {
        let d = Rc::new(RefCell::new(DictObj::default()));
        self.dicts.push(d.clone());
        d
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // Every container is still held here while its contents are dropped, so no
        // drop reaches a container through another one.
        for s in &self.seqs {
            if let Ok(mut b) = s.try_borrow_mut() {
                let contents = std::mem::take(&mut *b);
                drop(b);
                drop(contents);
            }
        }
        for d in &self.dicts {
            if let Ok(mut b) = d.try_borrow_mut() {
                let contents = std::mem::take(&mut *b);
                drop(b);
                drop(contents);
            }
        }
    }
}
