//! Embedding gather (`get_rows`): `y[i, :] = table[ids[i], :]` as f32.
//!
//! `table [v, d]` in any [`DType::WEIGHTS`] type (d a multiple of its block),
//! `ids [n]` u32, `y [n, d]` f32. Ids given by the host are checked before a
//! run (an id ≥ v is a typed error). Kernel: `shaders/get_rows.wgsl`; a table
//! larger than one storage binding is split by rows, one dispatch per chunk.

use super::{Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::ops::matmul::weight_define;
use crate::quant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetRows;

impl Op for GetRows {
    fn name(&self) -> &'static str {
        "get_rows"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (table, ids) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "table", table, &DType::WEIGHTS)?;
        require_dtype(self.name(), "ids", ids, &[DType::U32])?;
        if table.shape.len() != 2 || ids.shape.len() != 1 {
            return Err(shape_err(
                self.name(),
                format!(
                    "table {:?} must be [v, d] and ids {:?} be [n]",
                    table.shape, ids.shape
                ),
            ));
        }
        Ok((vec![ids.shape[0], table.shape[1]], DType::F32))
    }

    fn splittable_input(&self) -> Option<usize> {
        Some(0)
    }

    fn check_input_data(
        &self,
        idx: usize,
        data: &HostTensor,
        inputs: &[&TensorInfo],
    ) -> Result<()> {
        if idx == 1 {
            let rows = inputs[0].shape[0];
            if let Some(id) = data.to_u32()?.into_iter().find(|id| *id as usize >= rows) {
                return Err(KilnError::IndexOutOfRange { id, rows });
            }
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let table = inputs[0];
        let (v, d) = (table.shape[0], table.shape[1]);
        let rb = table.dtype.row_bytes(d)?;
        let mut y = Vec::new();
        for id in inputs[1].to_u32()? {
            let id = id as usize;
            if id >= v {
                return Err(KilnError::IndexOutOfRange {
                    id: id as u32,
                    rows: v,
                });
            }
            y.extend(quant::dequantize(
                table.dtype,
                &table.data[id * rb..(id + 1) * rb],
                d,
            )?);
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (table, ids) = (ctx.inputs[0], ctx.inputs[1]);
        let (n, d) = (ids.shape[0], table.shape[1]);
        let threads = n * d.div_ceil(4);
        let chunks = &ctx.chunks[0];
        chunks
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                Ok(Dispatch {
                    shader: "get_rows.wgsl",
                    entry: "main",
                    defines: vec![weight_define(table.dtype)],
                    bindings: vec![Bind::Input(0, c), Bind::Input(1, 0), Bind::Output],
                    params: vec![
                        u(n)?,
                        u(d)?,
                        u(ch.row0)?,
                        u(ch.rows)?,
                        (c + 1 == chunks.len()) as u32,
                    ],
                    groups: grid(threads.div_ceil(256), ctx.caps)?,
                })
            })
            .collect()
    }
}

impl Graph {
    /// Gathers rows of `table` (an embedding) for the token ids `ids`.
    pub fn get_rows(&mut self, table: TensorId, ids: TensorId) -> Result<TensorId> {
        self.push(GetRows, &[table, ids])
    }
}
