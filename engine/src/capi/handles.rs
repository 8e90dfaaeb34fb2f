//! The handle table: a handle is a slot index plus a generation, never an address, so a
//! freed, forged or wrong-kind handle is detected and never dereferenced.

use super::errors::*;
use super::types::*;
use crate::model::Model;
use crate::session::{Outputs, SequenceOutput, Session};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

/// What a handle refers to.
pub(super) enum Object {
    Model(Model),
    Session(Arc<Mutex<Session>>),
    Result(Arc<ResultSet>),
}

/// The outputs of one run, and what was asked for (to explain a missing output).
pub(super) struct ResultSet {
    pub(super) seqs: Vec<SequenceOutput>,
    pub(super) want: Outputs,
}

impl Object {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Object::Model(_) => "toprt_model",
            Object::Session(_) => "toprt_session",
            Object::Result(_) => "toprt_result",
        }
    }
}

pub(super) struct Slot {
    generation: usize,
    object: Option<Object>,
}

pub(super) struct Table {
    pub(super) slots: Vec<Slot>,
    pub(super) free: Vec<usize>,
    /// Objects in the table. When the last one goes, both arrays are released, so a
    /// program that frees every handle leaves no toprt memory behind (valgrind shows
    /// any forgotten handle).
    pub(super) live: usize,
    /// Generation of the next new slot. It stays above every generation issued before
    /// the arrays were last released, so older handles stay dead.
    fresh_generation: usize,
}

pub(super) static TABLE: Mutex<Table> = Mutex::new(Table::new());

/// The low half of a handle is the generation, the high half the slot index plus one.
pub(super) const HALF: u32 = usize::BITS / 2;
pub(super) const GENERATION_MASK: usize = (1 << HALF) - 1;

pub(super) fn table() -> MutexGuard<'static, Table> {
    // Every table method leaves the table consistent before it can panic, so a
    // poisoned lock holds a usable table.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The generation after `g`, skipping 0 (so no handle is ever 0 = NULL).
pub(super) fn next_generation(g: usize) -> usize {
    if g >= GENERATION_MASK {
        1
    } else {
        g + 1
    }
}

impl Table {
    pub(super) const fn new() -> Table {
        Table { slots: Vec::new(), free: Vec::new(), live: 0, fresh_generation: 1 }
    }

    pub(super) fn insert(&mut self, object: Object) -> CResult<usize> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < GENERATION_MASK - 1 => {
                self.slots.push(Slot { generation: self.fresh_generation, object: None });
                self.slots.len() - 1
            }
            None => return Err(invalid(format!("too many live toprt handles ({}); free some", self.slots.len()))),
        };
        let slot = &mut self.slots[index];
        slot.object = Some(object);
        self.live += 1;
        Ok(((index + 1) << HALF) | slot.generation)
    }

    pub(super) fn slot_of(&self, handle: usize) -> Option<usize> {
        let index = (handle >> HALF).checked_sub(1)?;
        let slot = self.slots.get(index)?;
        (slot.generation == handle & GENERATION_MASK && slot.object.is_some()).then_some(index)
    }

    /// The live object of `handle`.
    pub(super) fn find(&self, handle: usize, name: &str, kind: &str) -> CResult<&Object> {
        match self.slot_of(handle) {
            Some(i) => Ok(self.slots[i].object.as_ref().expect("slot_of checks the object is live")),
            None => Err(stale(handle, name, kind)),
        }
    }

    /// Takes the object out of its slot; the slot's generation moves on, so `handle` is
    /// dead from now on.
    pub(super) fn remove(&mut self, handle: usize, name: &str, kind: &str) -> CResult<Object> {
        let i = self.slot_of(handle).ok_or_else(|| stale(handle, name, kind))?;
        let slot = &mut self.slots[i];
        slot.generation = next_generation(slot.generation);
        let object = slot.object.take().expect("slot_of checks the object is live");
        self.free.push(i);
        self.live -= 1;
        if self.live == 0 {
            // Every slot's generation has moved past the ones it issued.
            let top = self.slots.iter().map(|s| s.generation).max().unwrap_or(self.fresh_generation);
            self.fresh_generation = top.max(self.fresh_generation);
            self.slots = Vec::new();
            self.free = Vec::new();
        }
        Ok(object)
    }
}

pub(super) fn stale(handle: usize, name: &str, kind: &str) -> CError {
    CError::new(
        TOPRT_ERR_BAD_HANDLE,
        format!("{name} ({handle:#x}) is not a live {kind}: it was already freed, or it was never returned by toprt"),
    )
}

pub(super) fn wrong_kind(name: &str, found: &Object, kind: &str) -> CError {
    CError::new(TOPRT_ERR_BAD_HANDLE, format!("{name} is a {} handle, not a {kind}", found.kind()))
}

/// The model behind a handle (a cheap clone: it is an `Arc`).
pub(super) fn model_of(h: *const toprt_model, name: &str) -> CResult<Model> {
    if h.is_null() {
        return Err(null(name));
    }
    match table().find(h.addr(), name, "toprt_model")? {
        Object::Model(m) => Ok(m.clone()),
        other => Err(wrong_kind(name, other, "toprt_model")),
    }
}

/// The result set behind a handle.
pub(super) fn result_of(h: *const toprt_result) -> CResult<Arc<ResultSet>> {
    if h.is_null() {
        return Err(null("result"));
    }
    match table().find(h.addr(), "result", "toprt_result")? {
        Object::Result(r) => Ok(Arc::clone(r)),
        other => Err(wrong_kind("result", other, "toprt_result")),
    }
}

/// Runs `f` on the session behind a handle, holding the session's lock. The lock is
/// taken while the table is locked, so the session cannot be freed in between.
pub(super) fn with_session<R>(h: *const toprt_session, f: impl FnOnce(&mut Session) -> CResult<R>) -> CResult<R> {
    if h.is_null() {
        return Err(null("session"));
    }
    let t = table();
    let arc = match t.find(h.addr(), "session", "toprt_session")? {
        Object::Session(s) => Arc::clone(s),
        other => return Err(wrong_kind("session", other, "toprt_session")),
    };
    let mut guard = match arc.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => return Err(busy()),
        Err(TryLockError::Poisoned(_)) => {
            return Err(CError::new(
                TOPRT_ERR_INTERNAL,
                "session is unusable after an internal error in an earlier call; free it and create a new one",
            ));
        }
    };
    drop(t);
    f(&mut guard)
}

pub(super) fn busy() -> CError {
    CError::new(TOPRT_ERR_BUSY, "session is in use by another thread (a session must be used by one thread at a time)")
}

/// Frees one handle of the expected kind; NULL is a no-op.
pub(super) fn free_handle(h: usize, name: &str, kind: &str) -> CResult<()> {
    if h == 0 {
        return Ok(());
    }
    let mut t = table();
    let found = t.find(h, name, kind)?;
    if found.kind() != kind {
        return Err(wrong_kind(name, found, kind));
    }
    if let Object::Session(s) = found {
        if matches!(s.try_lock(), Err(TryLockError::WouldBlock)) {
            return Err(busy());
        }
    }
    let object = t.remove(h, name, kind)?;
    drop(t);
    // Dropped outside the table lock: a session joins its worker threads here.
    drop(object);
    Ok(())
}

pub(super) fn new_handle<T>(object: Object) -> CResult<*mut T> {
    table().insert(object).map(std::ptr::without_provenance_mut)
}
