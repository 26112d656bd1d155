//! Kiln: quantized transformer inference on WebGPU (wgpu), natively and in the browser.
//!
//! A model builder emits a [`graph::Graph`] once; any [`backend::Backend`] compiles it
//! into an [`backend::Executable`] that is run once per step with new symbol values
//! (positions, lengths) and never rebuilt. See `ARCHITECTURE.md`.

pub mod backend;
pub mod dtype;
pub mod error;
pub mod generate;
pub mod graph;
pub mod host;
pub mod llm;
pub mod loader;
pub mod model;
pub mod ops;
pub mod parity;
pub mod quant;
pub mod rng;
pub mod sample;
pub mod tokenizer;
pub mod train;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
mod web_files;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web_sd;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web_terrain;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web_train;

pub use backend::{Backend, BackendError, Executable};
pub use dtype::DType;
pub use error::KilnError;
pub use graph::{Graph, Sym, TensorId, TensorKind};
pub use host::HostTensor;
