//! The allowlist: the only globals a pickle may name, and what calling each one does.
//! Nothing is ever imported or executed; a global is a token ([`Global`]) and a call
//! builds a dict, a set or a tensor view. Every other global is refused by name.

use super::error::{perr, TorchError};
use super::rebuild::rebuild_tensor;
use super::value::{Global, Heap, Value};
use crate::checkpoint::dtype::DType;

/// Resolves `module.name` against the allowlist.
pub(super) fn resolve_global(module: &str, name: &str, at: usize) -> Result<Global, TorchError> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("builtins" | "__builtin__", "set") => Global::Set,
        ("builtins" | "__builtin__", "frozenset") => Global::FrozenSet,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor" | "torch._utils", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch" | "torch._tensor", "Tensor") => Global::TensorType,
        ("torch.nn.parameter", "Parameter") => Global::ParameterType,
        ("torch" | "torch.storage", "UntypedStorage") => Global::UntypedStorage,
        ("torch" | "torch.cuda", n) if DType::from_torch_storage_class(n).is_some() => {
            Global::StorageType(DType::from_torch_storage_class(n).unwrap_or(DType::U8))
        }
        ("torch", n) if DType::from_torch_name(n).is_some() => {
            Global::DType(DType::from_torch_name(n).unwrap_or(DType::U8))
        }
        ("torch" | "torch.cuda", n) if is_other_torch_dtype(n) => {
            return Err(TorchError::UnsupportedDType { offset: at, name: n.to_owned() })
        }
        _ => return Err(TorchError::ForbiddenGlobal { offset: at, module: module.to_owned(), name: name.to_owned() }),
    };
    Ok(g)
}

/// Torch storage classes / dtypes that exist but are not supported here
/// (complex, quantized, float8, unsigned > 8 bits, sub-byte, ...).
fn is_other_torch_dtype(n: &str) -> bool {
    let digits = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    n.ends_with("Storage")
        || ["complex", "float8_", "float4_", "qint", "quint", "bits"].iter().any(|p| n.starts_with(p))
        || n.strip_prefix("uint").is_some_and(digits)
        || n.strip_prefix("int").is_some_and(digits)
        || matches!(n, "cfloat" | "cdouble" | "chalf")
}

/// Calls a whitelisted global. `nested_ok` allows one level of
/// `_rebuild_from_type_v2` indirection.
pub(super) fn call(
    heap: &mut Heap,
    g: Global,
    args: &[Value],
    at: usize,
    nested_ok: bool,
) -> Result<Value, TorchError> {
    match g {
        Global::OrderedDict => {
            if !args.is_empty() {
                return Err(perr(at, "OrderedDict() with arguments is not supported"));
            }
            Ok(Value::Dict(heap.new_dict()))
        }
        Global::Set | Global::FrozenSet => {
            let items = match args {
                [] => Vec::new(),
                [Value::List(s) | Value::Tuple(s) | Value::Set(s)] => s.borrow().clone(),
                _ => return Err(perr(at, "set() expects one list argument")),
            };
            Ok(Value::Set(heap.new_seq(items)))
        }
        Global::RebuildTensor => match args {
            [s, o, size, stride] => rebuild_tensor(s, o, size, stride, None, at),
            _ => Err(perr(at, format!("_rebuild_tensor expects 4 arguments, got {}", args.len()))),
        },
        Global::RebuildTensorV2 => match args {
            [s, o, size, stride, _rg, _hooks] | [s, o, size, stride, _rg, _hooks, _] => {
                rebuild_tensor(s, o, size, stride, None, at)
            }
            _ => Err(perr(at, format!("_rebuild_tensor_v2 expects 6 or 7 arguments, got {}", args.len()))),
        },
        Global::RebuildTensorV3 => match args {
            [s, o, size, stride, _rg, _hooks, dt] | [s, o, size, stride, _rg, _hooks, dt, _] => {
                let Value::Global(Global::DType(dt)) = dt else {
                    return Err(perr(at, format!("_rebuild_tensor_v3 dtype is {}", dt.kind())));
                };
                rebuild_tensor(s, o, size, stride, Some(*dt), at)
            }
            _ => Err(perr(at, format!("_rebuild_tensor_v3 expects 7 or 8 arguments, got {}", args.len()))),
        },
        Global::RebuildParameter | Global::RebuildParameterWithState => match args {
            [t @ Value::Tensor(_), _rg, _hooks] | [t @ Value::Tensor(_), _rg, _hooks, _] => Ok(t.clone()),
            _ => Err(perr(at, "_rebuild_parameter expects (tensor, requires_grad, hooks[, state])")),
        },
        Global::RebuildFromTypeV2 => {
            let [Value::Global(func), Value::Global(Global::TensorType | Global::ParameterType), Value::Tuple(fargs), _state] =
                args
            else {
                return Err(perr(
                    at,
                    "_rebuild_from_type_v2 expects (rebuild function, torch.Tensor/Parameter, args, state)",
                ));
            };
            if !nested_ok
                || !matches!(
                    func,
                    Global::RebuildTensor
                        | Global::RebuildTensorV2
                        | Global::RebuildTensorV3
                        | Global::RebuildParameter
                        | Global::RebuildParameterWithState
                )
            {
                return Err(perr(at, format!("_rebuild_from_type_v2 cannot call {func:?}")));
            }
            let fargs = fargs.borrow().clone();
            call(heap, *func, &fargs, at, false)
        }
        Global::TensorType
        | Global::ParameterType
        | Global::StorageType(_)
        | Global::UntypedStorage
        | Global::DType(_) => Err(perr(at, format!("{g:?} cannot be called"))),
    }
}
