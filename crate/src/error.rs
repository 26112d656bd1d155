//! Typed errors. Library code never panics on bad input: every failure a user
//! can cause is one of these variants.

use crate::dtype::DType;
use thiserror::Error;

/// Errors from dtypes, shapes, graph building and the CPU reference.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KilnError {
    #[error("unknown dtype '{0}'")]
    UnknownDType(String),
    #[error(
        "ggml tensor type {0} is not supported (Kiln reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
    )]
    UnsupportedGgmlType(u32),
    #[error("{dtype} stores {block}-element blocks but the row has {len} elements")]
    BlockMisaligned {
        dtype: DType,
        len: usize,
        block: usize,
    },
    #[error("{what}: expected {expected} bytes, got {got}")]
    ByteLength {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("op {op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("op {op} does not support {dtype} for {operand}")]
    UnsupportedDType {
        op: &'static str,
        operand: &'static str,
        dtype: DType,
    },
    #[error("op {op} expects {expected} inputs, got {got}")]
    Arity {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("tensor id {0} does not belong to this graph")]
    BadTensor(usize),
    #[error("graph input '{name}': {detail}")]
    BadInput { name: String, detail: String },
    #[error("symbol '{name}' = {value} is out of range: {detail}")]
    SymbolRange {
        name: String,
        value: u32,
        detail: String,
    },
    #[error("token id {id} is out of range for a table of {rows} rows")]
    IndexOutOfRange { id: u32, rows: usize },
    #[error("invalid parameter for op {op}: {detail}")]
    BadParam { op: &'static str, detail: String },
}

pub type Result<T, E = KilnError> = std::result::Result<T, E>;
