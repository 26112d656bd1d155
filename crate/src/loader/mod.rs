//! Model file loaders. Sizes and offsets are validated before anything is
//! allocated; truncated or corrupt files give a typed [`LoadError`].

pub mod file;
pub mod gguf;
pub mod gguf_write;
pub mod hf_gguf;
mod hf_spm;
pub mod onnx;
pub mod safetensors;
pub mod stream;

use thiserror::Error;

use crate::backend::BackendError;
use crate::error::KilnError;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum LoadError {
    #[error("I/O error: {0}")]
    Io(String),
    #[error("not a GGUF file (starts with {0:02x?}, expected \"GGUF\")")]
    BadMagic([u8; 4]),
    #[error("GGUF version {0} is not supported (Kiln reads versions 2 and 3)")]
    Version(u32),
    #[error("file is truncated: {what} needs bytes up to offset {need}, but the file has {len}")]
    Truncated { what: String, need: u64, len: u64 },
    #[error("corrupt file: {0}")]
    Corrupt(String),
    #[error(
        "tensor '{name}' has ggml type {id} ({type_name}), which Kiln does not read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)"
    )]
    UnsupportedTensorType {
        name: String,
        id: u32,
        type_name: &'static str,
    },
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' is {got}, expected {want}")]
    WrongType {
        key: String,
        got: String,
        want: &'static str,
    },
    #[error("model architecture '{0}' is not supported (Kiln runs: llama, qwen2, mistral)")]
    UnsupportedArchitecture(String),
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    #[error("tensor '{0}' is missing from the model file")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {got:?}, expected {want:?}")]
    TensorShape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template that ran past its limits (instructions, recursion,
    /// output size): templates come from model files and are code.
    #[error("chat template: {0}")]
    TemplateLimit(String),
    #[error(transparent)]
    Kiln(#[from] KilnError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(
        "the context is full: {need} tokens do not fit in {max_ctx} (start a new session or load with a larger context)"
    )]
    ContextFull { max_ctx: usize, need: usize },
    #[error("cancelled")]
    Cancelled,
    #[error("LoRA adapter: {0}")]
    Adapter(String),
    #[error("training: {0}")]
    Train(String),
}

/// Where a model's weights come from. Names are GGUF tensor names
/// (`blk.0.attn_q.weight`); a source maps them to its own naming.
pub trait WeightSource {
    /// Row-major shape and dtype of the tensor as it will be uploaded.
    fn info(&self, name: &str) -> Result<(Vec<usize>, crate::DType), LoadError>;
    /// The tensor's data in that dtype (converted or quantized if needed).
    fn read(&mut self, name: &str) -> Result<crate::HostTensor, LoadError>;
}

impl LoadError {
    /// A stable code for programs (the `code` of the JS `Error` on the web).
    pub fn code(&self) -> &'static str {
        use crate::backend::BackendError as B;
        match self {
            LoadError::Io(_) => "IO_ERROR",
            LoadError::BadMagic(_)
            | LoadError::Version(_)
            | LoadError::Truncated { .. }
            | LoadError::Corrupt(_)
            | LoadError::MissingKey(_)
            | LoadError::WrongType { .. }
            | LoadError::MissingTensor(_)
            | LoadError::TensorShape { .. } => "CORRUPT_FILE",
            LoadError::UnsupportedTensorType { .. }
            | LoadError::UnsupportedArchitecture(_)
            | LoadError::UnsupportedModel(_) => "UNSUPPORTED_MODEL",
            LoadError::Tokenizer(_) => "TOKENIZER_ERROR",
            LoadError::TemplateLimit(_) => "TEMPLATE_LIMIT",
            LoadError::Kiln(_) => "INVALID_INPUT",
            LoadError::ContextFull { .. } => "CONTEXT_FULL",
            LoadError::Cancelled => "ABORTED",
            LoadError::Adapter(_) => "BAD_ADAPTER",
            LoadError::Train(_) => "BAD_TRAINING_INPUT",
            LoadError::Backend(b) => match b {
                B::NoAdapter(_) | B::RequestDevice(_) => "WEBGPU_UNAVAILABLE",
                B::DeviceLost(_) => "DEVICE_LOST",
                B::OutOfMemory(_) => "OUT_OF_MEMORY",
                B::BindingTooLarge { .. } => "DEVICE_LIMIT",
                B::Unsupported { .. } => "UNSUPPORTED_MODEL",
                B::Graph(_) | B::Tensor { .. } => "INVALID_INPUT",
                B::ShaderCompile { .. } | B::Validation(_) => "GPU_ERROR",
            },
        }
    }
}

impl From<std::io::Error> for LoadError {
    fn from(e: std::io::Error) -> Self {
        LoadError::Io(e.to_string())
    }
}
