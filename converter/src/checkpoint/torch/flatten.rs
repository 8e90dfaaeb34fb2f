//! Flattening the unpickled object into named tensors: keys of nested dicts (and indices
//! of nested lists and tuples) are joined with `.`, e.g. `state_dict.fc.weight`; leaves
//! that are not tensors are recorded as skipped. Shared and cyclic graphs are bounded by
//! a visit budget and by [`MAX_NESTING`].

use std::collections::HashSet;
use std::rc::Rc;

use super::error::TorchError;
use super::value::{TensorDesc, Value};

/// Maximum nesting depth of dictionaries/lists when flattening the loaded
/// object into tensor names (also the guard against reference cycles).
pub const MAX_NESTING: usize = 64;

/// Collects the tensors (and skipped leaves) of an object graph, depth first.
pub(super) struct Flattener {
    /// Remaining node visits (bounds work on shared / cyclic structures).
    budget: usize,
    names: HashSet<String>,
    /// Tensors found, with their dotted names.
    pub(super) tensors: Vec<(String, Rc<TensorDesc>)>,
    /// Dotted names of the leaves that are not tensors.
    pub(super) skipped: Vec<String>,
}

impl Flattener {
    /// A flattener for an object unpickled from `pkl_len` bytes. A tree that size has
    /// fewer nodes than bytes; needing more visits means shared subgraphs, refused.
    pub(super) fn new(pkl_len: usize) -> Self {
        Flattener {
            budget: pkl_len.saturating_add(16),
            names: HashSet::new(),
            tensors: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn child_name(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }

    pub(super) fn visit(&mut self, v: &Value, name: &str, depth: usize) -> Result<(), TorchError> {
        if depth > MAX_NESTING {
            return Err(TorchError::Structure(format!(
                "'{name}' is nested more than {MAX_NESTING} levels deep (or contains a cycle)"
            )));
        }
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            TorchError::Structure("object graph is larger than data.pkl allows (shared references?)".into())
        })?;
        match v {
            Value::Dict(d) => {
                let d = d.borrow();
                for (k, val) in &d.entries {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
                        other => {
                            return Err(TorchError::Structure(format!(
                                "key of '{name}' is {}, expected str or int",
                                other.kind()
                            )))
                        }
                    };
                    self.visit(val, &Self::child_name(name, &key), depth + 1)?;
                }
            }
            Value::List(s) | Value::Tuple(s) => {
                let s = s.borrow();
                for (i, val) in s.iter().enumerate() {
                    self.visit(val, &Self::child_name(name, &i.to_string()), depth + 1)?;
                }
            }
            Value::Tensor(t) => {
                if !self.names.insert(name.to_owned()) {
                    return Err(TorchError::Structure(format!("duplicate tensor name '{name}'")));
                }
                self.tensors.push((name.to_owned(), t.clone()));
            }
            _ => self.skipped.push(name.to_owned()),
        }
        Ok(())
    }
}
