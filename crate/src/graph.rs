//! The op graph: tensors, ops and symbols, built once by a model and executed
//! many times by any backend.
//!
//! * Tensors are `Input` (uploaded per run), `Weight` (uploaded once), `State`
//!   (persistent and mutable on the device, e.g. a KV cache) or `Intermediate`
//!   (produced by a node; the backend pools their memory).
//! * Nodes run in the order they were pushed. An op may write one of its inputs
//!   in place (only `State` tensors), see [`crate::ops::Op::in_place`].
//! * Symbols ([`Sym`]) are `u32` values supplied on every run (the position of
//!   the first new token, say). Shapes are static, so the graph and everything a
//!   backend derives from it are reused across decode steps; only symbols and
//!   inputs change.

use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::host::byte_size;
use crate::ops::Op;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorKind {
    Input,
    Weight,
    State,
    Intermediate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub kind: TensorKind,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Size of the last (contiguous) dimension.
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    /// Number of rows (product of all but the last dimension).
    pub fn rows(&self) -> usize {
        self.numel() / self.cols().max(1)
    }
    pub fn bytes(&self) -> usize {
        byte_size(&self.shape, self.dtype).unwrap_or(0)
    }
}

/// A runtime `u32` value (a position, a length) named when the graph is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sym(pub u32);

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Arc<dyn Op>,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

/// A graph holds one or more *programs* (node lists) over one set of
/// tensors: e.g. a decode step (1 token) and a prefill step (a chunk of
/// tokens) sharing weights and the KV cache. Nodes are pushed into the last
/// program ([`Graph::begin_program`] starts a new one).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub nodes: Vec<Node>,
    pub syms: Vec<String>,
    pub outputs: Vec<TensorId>,
    /// Index of the first node of each program after program 0.
    pub program_starts: Vec<usize>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    fn add_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        kind: TensorKind,
    ) -> Result<TensorId> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(KilnError::BadInput {
                name: name.into(),
                detail: format!("shape {shape:?} must be non-empty with no zero dimension"),
            });
        }
        byte_size(shape, dtype)?;
        self.tensors.push(TensorInfo {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            kind,
        });
        Ok(TensorId(self.tensors.len() - 1))
    }

    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        self.add_tensor(name, shape, dtype, TensorKind::Input)
    }
    pub fn weight(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        self.add_tensor(name, shape, dtype, TensorKind::Weight)
    }
    pub fn state(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        self.add_tensor(name, shape, dtype, TensorKind::State)
    }
    pub fn sym(&mut self, name: &str) -> Sym {
        self.syms.push(name.into());
        Sym(self.syms.len() as u32 - 1)
    }

    pub fn info(&self, t: TensorId) -> Result<&TensorInfo> {
        self.tensors.get(t.0).ok_or(KilnError::BadTensor(t.0))
    }

    pub fn mark_output(&mut self, t: TensorId) -> Result<()> {
        self.info(t)?;
        if !self.outputs.contains(&t) {
            self.outputs.push(t);
        }
        Ok(())
    }

    /// Appends a node. Shapes and dtypes are checked now (a typed error, never a panic).
    pub fn push(&mut self, op: impl Op + 'static, inputs: &[TensorId]) -> Result<TensorId> {
        self.push_arc(Arc::new(op), inputs)
    }

    /// [`Graph::push`] of a shared op (re-emitting an existing node's op, as
    /// activation recomputation does).
    pub fn push_arc(&mut self, op: Arc<dyn Op>, inputs: &[TensorId]) -> Result<TensorId> {
        let infos = inputs
            .iter()
            .map(|t| self.info(*t))
            .collect::<Result<Vec<_>>>()?;
        let (shape, dtype) = op.infer(&infos)?;
        for s in op.syms() {
            if s.0 as usize >= self.syms.len() {
                return Err(KilnError::BadParam {
                    op: op.name(),
                    detail: format!("symbol {} is not declared in this graph", s.0),
                });
            }
        }
        let output = match op.in_place() {
            Some(i) => {
                let dst = inputs[i];
                let info = &self.tensors[dst.0];
                if info.kind != TensorKind::State || info.shape != shape || info.dtype != dtype {
                    return Err(KilnError::BadParam {
                        op: op.name(),
                        detail: format!(
                            "in-place destination '{}' must be a state tensor",
                            info.name
                        ),
                    });
                }
                dst
            }
            None => {
                let name = format!("{}#{}", op.name(), self.nodes.len());
                self.add_tensor(&name, &shape, dtype, TensorKind::Intermediate)?
            }
        };
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            output,
        });
        Ok(output)
    }

    /// Starts a new program; later pushes go into it. Returns its index.
    pub fn begin_program(&mut self) -> usize {
        self.program_starts.push(self.nodes.len());
        self.program_starts.len()
    }

    pub fn program_count(&self) -> usize {
        self.program_starts.len() + 1
    }

    /// Node index range of program `p`.
    pub fn program(&self, p: usize) -> Result<std::ops::Range<usize>> {
        if p >= self.program_count() {
            return Err(KilnError::BadParam {
                op: "run",
                detail: format!(
                    "program {p} does not exist ({} programs)",
                    self.program_count()
                ),
            });
        }
        let start = if p == 0 {
            0
        } else {
            self.program_starts[p - 1]
        };
        let end = self
            .program_starts
            .get(p)
            .copied()
            .unwrap_or(self.nodes.len());
        Ok(start..end)
    }

    /// Checks symbol values against the bounds of every op of program `p`.
    pub fn check_syms(&self, p: usize, syms: &[u32]) -> Result<()> {
        if syms.len() != self.syms.len() {
            return Err(KilnError::BadParam {
                op: "run",
                detail: format!(
                    "graph declares {} symbols, {} given",
                    self.syms.len(),
                    syms.len()
                ),
            });
        }
        for node in &self.nodes[self.program(p)?] {
            let infos: Vec<&TensorInfo> = node.inputs.iter().map(|t| &self.tensors[t.0]).collect();
            node.op.check_syms(&infos, syms, &self.syms)?;
        }
        Ok(())
    }

    /// For each tensor, the index of the last node that reads it (None if never read).
    pub fn last_use(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for t in &n.inputs {
                last[t.0] = Some(i);
            }
        }
        last
    }
}
