//! The restricted pickle machine that runs `data.pkl`: a stack machine over only the
//! opcodes a state dict needs (listed in the parent module's documentation). Globals are
//! resolved against the allowlist in `globals.rs` and persistent ids become storage
//! references (`rebuild.rs`); every other opcode is refused with
//! [`TorchError::UnsupportedOpcode`]. Every length read from the pickle is checked
//! against the bytes left before use.

use std::collections::HashMap;
use std::rc::Rc;

use super::error::{perr, TorchError};
use super::globals::{call, resolve_global};
use super::rebuild::persistent_load;
use super::value::{Heap, Value};

/// The name of pickle opcode `op`, for error messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown opcode",
    }
}

/// The restricted pickle machine.
///
/// Every container it creates is owned by `heap`, so that dropping the machine (and
/// with it a deeply nested or cyclic graph) never recurses; see `value.rs`.
pub(super) struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    heap: Heap,
}

impl<'a> Unpickler<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Unpickler { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), heap: Heap::default() }
    }

    fn take(&mut self, n: usize, at: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let data = self.data;
        let s = self.pos.checked_add(n).and_then(|end| data.get(self.pos..end)).ok_or_else(|| {
            perr(
                at,
                format!("{what}: needs {n} bytes but data.pkl has only {} left", data.len().saturating_sub(self.pos)),
            )
        })?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, at: usize, what: &str) -> Result<u8, TorchError> {
        Ok(self.take(1, at, what)?.first().copied().unwrap_or(0))
    }

    fn arr<const N: usize>(&mut self, at: usize, what: &str) -> Result<[u8; N], TorchError> {
        let s = self.take(N, at, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len_u64(&mut self, v: u64, at: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let n = usize::try_from(v).map_err(|_| perr(at, format!("{what}: length {v} too large")))?;
        self.take(n, at, what)
    }

    fn line(&mut self, at: usize, what: &str) -> Result<&'a str, TorchError> {
        let data = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| perr(at, format!("{what}: missing newline")))?;
        let s = rest.get(..nl).unwrap_or(&[]);
        self.pos += nl + 1;
        std::str::from_utf8(s).map_err(|_| perr(at, format!("{what}: not valid UTF-8")))
    }

    fn frame_base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self, at: usize) -> Result<Value, TorchError> {
        if self.stack.len() <= self.frame_base() {
            return Err(perr(at, "stack underflow"));
        }
        self.stack.pop().ok_or_else(|| perr(at, "stack underflow"))
    }

    fn top(&self, at: usize) -> Result<&Value, TorchError> {
        if self.stack.len() <= self.frame_base() {
            return Err(perr(at, "stack underflow"));
        }
        self.stack.last().ok_or_else(|| perr(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>, TorchError> {
        let m = self.marks.pop().ok_or_else(|| perr(at, "no MARK on the stack"))?;
        if m > self.stack.len() {
            return Err(perr(at, "corrupt MARK"));
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, idx: u32, at: usize) -> Result<(), TorchError> {
        let v = self.top(at)?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32, at: usize) -> Result<(), TorchError> {
        let v = self.memo.get(&idx).cloned().ok_or_else(|| perr(at, format!("memo key {idx} not found")))?;
        self.push(v);
        Ok(())
    }

    fn str_value(raw: &[u8], at: usize) -> Result<Value, TorchError> {
        let s = std::str::from_utf8(raw).map_err(|_| perr(at, "string is not valid UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn int_from_le(raw: &[u8], at: usize) -> Result<Value, TorchError> {
        if raw.len() > 8 {
            return Err(perr(at, format!("{}-byte integer does not fit in 64 bits", raw.len())));
        }
        let Some(&last) = raw.last() else {
            return Ok(Value::Int(0));
        };
        let fill = if last & 0x80 != 0 { 0xff } else { 0 };
        let mut a = [fill; 8];
        for (d, s) in a.iter_mut().zip(raw) {
            *d = *s;
        }
        Ok(Value::Int(i64::from_le_bytes(a)))
    }

    /// Runs the machine to `STOP` and returns the unpickled object.
    #[allow(clippy::too_many_lines)]
    pub(super) fn run(&mut self) -> Result<Value, TorchError> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return Err(perr(at, "unexpected end of data.pkl (no STOP opcode)"));
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let v = self.u8(at, "PROTO")?;
                    if v > 5 {
                        return Err(perr(at, format!("unsupported pickle protocol {v}")));
                    }
                }
                0x95 => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "FRAME")?);
                    let left = self.data.len().saturating_sub(self.pos);
                    if n > left as u64 {
                        return Err(perr(at, format!("FRAME of {n} bytes but only {left} left")));
                    }
                }
                b'.' => return self.pop(at),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.top(at)?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.arr::<4>(at, "BININT")?);
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8(at, "BININT1")?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr::<2>(at, "BININT2")?);
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = self.u8(at, "LONG1")?;
                    let raw = self.take(usize::from(n), at, "LONG1")?;
                    let v = Self::int_from_le(raw, at)?;
                    self.push(v);
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.arr::<4>(at, "LONG4")?);
                    let n = usize::try_from(n).map_err(|_| perr(at, "LONG4 with negative length"))?;
                    let raw = self.take(n, at, "LONG4")?;
                    let v = Self::int_from_le(raw, at)?;
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr::<8>(at, "BINFLOAT")?);
                    self.push(Value::Float(v));
                }
                0x8c => {
                    let n = self.u8(at, "SHORT_BINUNICODE")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINUNICODE")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.arr::<4>(at, "BINUNICODE")?);
                    let raw = self.len_u64(u64::from(n), at, "BINUNICODE")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "BINUNICODE8")?);
                    let raw = self.len_u64(n, at, "BINUNICODE8")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'U' => {
                    let n = self.u8(at, "SHORT_BINSTRING")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINSTRING")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.arr::<4>(at, "BINSTRING")?);
                    let n = usize::try_from(n).map_err(|_| perr(at, "BINSTRING with negative length"))?;
                    let raw = self.take(n, at, "BINSTRING")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'C' => {
                    let n = self.u8(at, "SHORT_BINBYTES")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.arr::<4>(at, "BINBYTES")?);
                    let raw = self.len_u64(u64::from(n), at, "BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "BINBYTES8")?);
                    let raw = self.len_u64(n, at, "BINBYTES8")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                b')' => {
                    let t = self.heap.new_seq(Vec::new());
                    self.push(Value::Tuple(t));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    let t = self.heap.new_seq(items);
                    self.push(Value::Tuple(t));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    let t = self.heap.new_seq(items);
                    self.push(Value::Tuple(t));
                }
                b']' => {
                    let l = self.heap.new_seq(Vec::new());
                    self.push(Value::List(l));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => return Err(perr(at, format!("APPEND to {}", other.kind()))),
                    }
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => return Err(perr(at, format!("APPENDS to {}", other.kind()))),
                    }
                }
                b'}' => {
                    let d = self.heap.new_dict();
                    self.push(Value::Dict(d));
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.set_items(vec![k, v], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    self.set_items(items, at)?;
                }
                0x8f => {
                    let s = self.heap.new_seq(Vec::new());
                    self.push(Value::Set(s));
                }
                0x90 => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::Set(s) => s.borrow_mut().extend(items),
                        other => return Err(perr(at, format!("ADDITEMS to {}", other.kind()))),
                    }
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    let s = self.heap.new_seq(items);
                    self.push(Value::Set(s));
                }
                b'q' => {
                    let i = self.u8(at, "BINPUT")?;
                    self.memo_put(u32::from(i), at)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.arr::<4>(at, "LONG_BINPUT")?);
                    self.memo_put(i, at)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).map_err(|_| perr(at, "memo full"))?;
                    self.memo_put(i, at)?;
                }
                b'h' => {
                    let i = self.u8(at, "BINGET")?;
                    self.memo_get(u32::from(i), at)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.arr::<4>(at, "LONG_BINGET")?);
                    self.memo_get(i, at)?;
                }
                b'c' => {
                    let module = self.line(at, "GLOBAL module")?;
                    let name = self.line(at, "GLOBAL name")?;
                    let g = resolve_global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(perr(
                            at,
                            format!("STACK_GLOBAL needs two str, got {} and {}", module.kind(), name.kind()),
                        ));
                    };
                    let g = resolve_global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let Value::Global(g) = func else {
                        return Err(perr(at, format!("REDUCE on {}, not a global", func.kind())));
                    };
                    let Value::Tuple(args) = args else {
                        return Err(perr(at, format!("REDUCE arguments are {}, not a tuple", args.kind())));
                    };
                    let args = args.borrow().clone();
                    let v = call(&mut self.heap, g, &args, at, true)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    match self.top(at)? {
                        // Attributes of an OrderedDict subclass instance (e.g. the
                        // `_metadata` of a state dict): irrelevant for tensors.
                        Value::Dict(_) => drop(state),
                        other => return Err(perr(at, format!("BUILD on {} is not supported", other.kind()))),
                    }
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    let s = persistent_load(&pid, at)?;
                    self.push(Value::Storage(Rc::new(s)));
                }
                _ => return Err(TorchError::UnsupportedOpcode { offset: at, opcode: op, name: opcode_name(op) }),
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>, at: usize) -> Result<(), TorchError> {
        if items.len() % 2 == 1 {
            return Err(perr(at, "SETITEMS with an odd number of items"));
        }
        let Value::Dict(d) = self.top(at)? else {
            return Err(perr(at, format!("SETITEM(S) on {}", self.top(at)?.kind())));
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match k.key() {
                Some(key) => {
                    if let Some(&i) = d.index.get(&key) {
                        if let Some(slot) = d.entries.get_mut(i) {
                            slot.1 = v;
                        }
                    } else {
                        let i = d.entries.len();
                        d.index.insert(key, i);
                        d.entries.push((k, v));
                    }
                }
                None => d.entries.push((k, v)),
            }
        }
        Ok(())
    }
}
