//! Host-side tensors: a shape, a dtype and little-endian bytes in the dtype's
//! storage layout (GGUF block layout for quantized types).

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::quant;

#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Bytes a tensor of this shape and dtype occupies (rows must be whole blocks).
pub fn byte_size(shape: &[usize], dtype: DType) -> Result<usize> {
    let last = shape.last().copied().unwrap_or(1);
    let rows = numel(shape) / last.max(1);
    Ok(dtype.row_bytes(last)? * rows)
}

impl HostTensor {
    /// A tensor from raw bytes; the length is checked against shape and dtype.
    pub fn from_bytes(shape: &[usize], dtype: DType, data: Vec<u8>) -> Result<HostTensor> {
        let expected = byte_size(shape, dtype)?;
        if data.len() != expected {
            return Err(KilnError::ByteLength {
                what: format!("{dtype} tensor {shape:?}"),
                expected,
                got: data.len(),
            });
        }
        Ok(HostTensor {
            shape: shape.to_vec(),
            dtype,
            data,
        })
    }

    /// Encodes f32 values into `dtype` (quantizing if needed).
    pub fn from_f32(shape: &[usize], dtype: DType, values: &[f32]) -> Result<HostTensor> {
        if values.len() != numel(shape) {
            return Err(KilnError::ByteLength {
                what: format!("values for tensor {shape:?}"),
                expected: numel(shape),
                got: values.len(),
            });
        }
        let data = if dtype == DType::U32 {
            values
                .iter()
                .flat_map(|v| (*v as u32).to_le_bytes())
                .collect()
        } else if dtype.block_size() == 1 {
            // Element-wise types: one pass (per-row calls would allocate once
            // per row — a million times for a one-channel NHWC batch).
            quant::quantize(dtype, values)?
        } else {
            quant::quantize_rows(dtype, values, shape.last().copied().unwrap_or(1))?
        };
        HostTensor::from_bytes(shape, dtype, data)
    }

    pub fn from_u32(shape: &[usize], values: &[u32]) -> Result<HostTensor> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        HostTensor::from_bytes(shape, DType::U32, data)
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Result<HostTensor> {
        Ok(HostTensor {
            shape: shape.to_vec(),
            dtype,
            data: vec![0; byte_size(shape, dtype)?],
        })
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Decodes (dequantizes) to f32. U32 values are converted numerically.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        if self.dtype == DType::U32 {
            return Ok(self.to_u32()?.into_iter().map(|v| v as f32).collect());
        }
        quant::dequantize(self.dtype, &self.data, self.numel())
    }

    pub fn to_u32(&self) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(KilnError::UnsupportedDType {
                op: "to_u32",
                operand: "tensor",
                dtype: self.dtype,
            });
        }
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}
