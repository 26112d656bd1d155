//! ONNX model files: the protobuf messages Kiln needs (graph nodes with their
//! attributes, initializers), decoded with `prost`'s derive from a hand-kept
//! subset of `onnx.proto3` (field numbers below match it; unknown fields are
//! skipped by the decoder). Tensor bytes stay in the file's buffer (`Bytes`,
//! zero-copy) until a weight is converted.
//!
//! Kiln does not interpret ONNX graphs op by op: a model builder (e.g.
//! [`crate::model::unet`]) builds its own graph from a config and reads the
//! initializers by name, using the nodes only to recover what an exporter left
//! anonymous (constant-folded GroupNorm affine tensors, attention scales).

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use super::LoadError;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "bytes", tag = "4")]
    pub s: Bytes,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: Bytes,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// ONNX `TensorProto.DataType` values Kiln converts to f32.
const FLOAT: i32 = 1;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const BFLOAT16: i32 = 16;

/// A decoded ONNX model: its nodes, and its initializers by name.
pub struct OnnxModel {
    pub graph: GraphProto,
    inits: HashMap<String, usize>,
    /// value name → indices of the nodes that read it.
    consumers: HashMap<String, Vec<usize>>,
}

impl OnnxModel {
    /// Decodes an ONNX file held in memory (the buffer is kept: initializer
    /// bytes are views into it).
    pub fn parse(bytes: impl Into<Bytes>) -> Result<OnnxModel, LoadError> {
        let bytes: Bytes = bytes.into();
        if bytes.is_empty() {
            return Err(LoadError::Corrupt("the ONNX file is empty".into()));
        }
        let model = ModelProto::decode(bytes)
            .map_err(|e| LoadError::Corrupt(format!("not a valid ONNX (protobuf) file: {e}")))?;
        let graph = model
            .graph
            .ok_or_else(|| LoadError::Corrupt("the ONNX file has no graph".into()))?;
        let mut inits = HashMap::new();
        for (i, t) in graph.initializer.iter().enumerate() {
            if inits.insert(t.name.clone(), i).is_some() {
                return Err(LoadError::Corrupt(format!(
                    "initializer '{}' appears twice",
                    t.name
                )));
            }
        }
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for input in &n.input {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        Ok(OnnxModel {
            graph,
            inits,
            consumers,
        })
    }

    pub fn read(path: &std::path::Path) -> Result<OnnxModel, LoadError> {
        let bytes =
            std::fs::read(path).map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
        OnnxModel::parse(bytes)
    }

    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.inits.get(name).map(|i| &self.graph.initializer[*i])
    }

    /// Names of all initializers, in file order.
    pub fn initializer_names(&self) -> impl Iterator<Item = &str> {
        self.graph.initializer.iter().map(|t| t.name.as_str())
    }

    /// The nodes that read value `name`.
    pub fn consumers(&self, name: &str) -> impl Iterator<Item = &NodeProto> {
        self.consumers
            .get(name)
            .into_iter()
            .flatten()
            .map(|i| &self.graph.node[*i])
    }

    /// Shape of initializer `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        let t = self
            .initializer(name)
            .ok_or_else(|| LoadError::MissingTensor(name.into()))?;
        t.dims
            .iter()
            .map(|d| {
                usize::try_from(*d).map_err(|_| {
                    LoadError::Corrupt(format!("initializer '{name}' has dims {:?}", t.dims))
                })
            })
            .collect()
    }

    /// Initializer `name` as f32 values (from f32, f16, bf16 or f64 data,
    /// raw or typed), with its shape. External data is a typed error.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let t = self
            .initializer(name)
            .ok_or_else(|| LoadError::MissingTensor(name.into()))?;
        let shape = self.shape(name)?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| LoadError::Corrupt(format!("initializer '{name}' is too large")))?;
        let bad = |what: String| LoadError::Corrupt(format!("initializer '{name}': {what}"));
        if t.data_location == 1 {
            return Err(LoadError::UnsupportedModel(format!(
                "initializer '{name}' is stored in an external file; export the model with its weights inline"
            )));
        }
        let raw = &t.raw_data;
        let width = match t.data_type {
            FLOAT => 4,
            FLOAT16 | BFLOAT16 => 2,
            DOUBLE => 8,
            other => {
                return Err(LoadError::UnsupportedModel(format!(
                    "initializer '{name}' has ONNX data type {other} (Kiln reads float, float16, bfloat16, double)"
                )));
            }
        };
        let values: Vec<f32> = if !raw.is_empty() {
            if raw.len() != n * width {
                return Err(bad(format!("{} bytes for {n} values", raw.len())));
            }
            match t.data_type {
                FLOAT => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                FLOAT16 => raw
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                BFLOAT16 => raw
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                _ => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32)
                    .collect(),
            }
        } else {
            match t.data_type {
                FLOAT => t.float_data.clone(),
                DOUBLE => t.double_data.iter().map(|v| *v as f32).collect(),
                // float16/bfloat16 typed data: the bits in int32_data.
                FLOAT16 => t
                    .int32_data
                    .iter()
                    .map(|v| half::f16::from_bits(*v as u16).to_f32())
                    .collect(),
                _ => t
                    .int32_data
                    .iter()
                    .map(|v| half::bf16::from_bits(*v as u16).to_f32())
                    .collect(),
            }
        };
        if values.len() != n {
            return Err(bad(format!("{} values for shape {shape:?}", values.len())));
        }
        Ok((shape, values))
    }

    /// A float attribute of `node`.
    pub fn attr_f(node: &NodeProto, name: &str) -> Option<f32> {
        node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
    }
}
