//! The Stable-Diffusion family from diffusers folders: the CLIP text encoder
//! ([`clip`]), `UNet2DConditionModel` ([`unet`]) and the `AutoencoderKL`
//! decoder ([`vae`]), each built as a Kiln graph from its `config.json`
//! ([`config`]) with weights read by PyTorch parameter name ([`weights`]).
//!
//! Layout as in the terrain UNet: NHWC activations, conv kernels stored
//! `[Cout, kh·kw·Cin]`, Linear matrices `[out, in]`. Attention projections
//! without a fused form in the files (`to_q`, `to_k`, `to_v`) are stacked at
//! load into one matrix, so self-attention is one matmul and one
//! `spatial_attention`, and cross-attention one `to_q` matmul, one stacked
//! `to_k|to_v` matmul of the text and one `cross_attention`.

pub mod clip;
pub mod config;
pub mod pipeline;
pub mod scheduler;
pub mod taesd;
pub mod txt2img;
pub mod unet;
pub mod vae;
pub mod vae_encoder;
pub mod vae_tiling;
pub mod weights;

pub use config::{ClipConfig, Unet2dConfig, VaeConfig};
pub use weights::Component;

use crate::backend::{Backend, Executable};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::loader::LoadError;
use crate::model::unet::WeightKind;
use crate::ops::conv2d::Conv2d;
use crate::ops::group_norm::GroupNorm;

/// One weight of a graph: the file tensor(s) it is made of (several are
/// stacked row-wise; none: zeros, the bias of a conv without one) and how
/// it is stored.
#[derive(Clone, Debug)]
pub struct SdWeight {
    pub id: TensorId,
    pub sources: Vec<String>,
    pub kind: WeightKind,
}

/// A built module: its graph and the weights to upload.
pub struct SdGraph {
    pub graph: Graph,
    pub weights: Vec<SdWeight>,
    /// Readable intermediate values (with `probes`), by module path.
    pub probes: Vec<(String, TensorId)>,
}

/// Graph-building options shared by the modules.
#[derive(Clone, Debug, Default)]
pub struct SdOptions {
    /// Store conv and linear weights as this type (F16, BF16, Q8_0, Q4_K…;
    /// rows that are not whole blocks stay f32). None: f32.
    pub weight_dtype: Option<DType>,
    /// Mark block outputs readable (per-block parity).
    pub probes: bool,
    /// Run every VAE attention as matmuls + softmax (the path of heads
    /// wider than the fused kernel holds), to test it on small models.
    pub matmul_attention: bool,
    /// Decode large images in tiles, as diffusers' `enable_vae_tiling()`
    /// (`vae_tiling.rs`): the decoder's memory is that of a tile.
    pub vae_tiling: bool,
}

/// The shared graph helpers (weights by name, Linear, conv, norms).
pub(crate) struct Builder<'a> {
    pub g: Graph,
    pub weights: Vec<SdWeight>,
    /// Each named weight's tensor by (label, shape): a module built twice
    /// (one program per tile shape) shares its weights.
    named: std::collections::HashMap<(String, Vec<usize>), usize>,
    pub probes: Vec<(String, TensorId)>,
    pub opts: &'a SdOptions,
}

impl<'a> Builder<'a> {
    pub fn new(opts: &'a SdOptions) -> Builder<'a> {
        Builder {
            g: Graph::new(),
            weights: Vec::new(),
            named: Default::default(),
            probes: Vec::new(),
            opts,
        }
    }

    pub fn finish(self) -> SdGraph {
        SdGraph {
            graph: self.g,
            weights: self.weights,
            probes: self.probes,
        }
    }

    pub fn probe(&mut self, name: &str, t: TensorId) -> Result<()> {
        if self.opts.probes {
            self.g.mark_output(t)?;
            self.probes.push((name.into(), t));
        }
        Ok(())
    }

    /// A weight made of `sources` (stacked when several).
    pub fn weight_of(
        &mut self,
        sources: Vec<String>,
        shape: &[usize],
        kind: WeightKind,
    ) -> Result<TensorId> {
        let dtype = crate::model::unet::storage_dtype(kind, shape, self.opts.weight_dtype);
        let label = if sources.is_empty() {
            "zeros".to_string()
        } else {
            sources.join("+")
        };
        let key = (label, shape.to_vec());
        if let Some(&i) = self.named.get(&key)
            && self.weights[i].kind == kind
            && !sources.is_empty()
        {
            return Ok(self.weights[i].id);
        }
        let id = self.g.weight(&key.0, shape, dtype)?;
        self.named.insert(key, self.weights.len());
        self.weights.push(SdWeight { id, sources, kind });
        Ok(id)
    }

    pub fn weight(&mut self, name: &str, shape: &[usize], kind: WeightKind) -> Result<TensorId> {
        self.weight_of(vec![name.into()], shape, kind)
    }

    /// `x [.., n_in] · Wᵀ (+ bias)` for the Linear(s) `names` (stacked).
    pub fn linear_of(
        &mut self,
        x: TensorId,
        names: &[String],
        n_in: usize,
        n_out: usize,
        bias: bool,
    ) -> Result<TensorId> {
        let w = self.weight_of(
            names.iter().map(|n| format!("{n}.weight")).collect(),
            &[n_out, n_in],
            WeightKind::Linear,
        )?;
        let y = self.g.matmul(x, w)?;
        if !bias {
            return Ok(y);
        }
        let b = self.weight_of(
            names.iter().map(|n| format!("{n}.bias")).collect(),
            &[n_out],
            WeightKind::Vector,
        )?;
        self.g.add(y, b)
    }

    pub fn linear(
        &mut self,
        x: TensorId,
        name: &str,
        n_in: usize,
        n_out: usize,
        bias: bool,
    ) -> Result<TensorId> {
        self.linear_of(x, &[name.to_string()], n_in, n_out, bias)
    }

    /// A k×k convolution (stride `stride`, "same" padding) with bias, plus
    /// an optional residual added in the same kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: TensorId,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        res: Option<TensorId>,
    ) -> Result<TensorId> {
        let w = self.weight(
            &format!("{name}.weight"),
            &[cout, k * k * cin],
            WeightKind::Conv,
        )?;
        let b = self.weight(&format!("{name}.bias"), &[cout], WeightKind::Vector)?;
        self.g.conv2d(x, w, b, res, Conv2d::same(k, stride))
    }

    /// A k×k convolution `op` (any stride and padding) with bias.
    pub fn conv_with(
        &mut self,
        x: TensorId,
        name: &str,
        (cin, cout): (usize, usize),
        op: Conv2d,
    ) -> Result<TensorId> {
        let w = self.weight(
            &format!("{name}.weight"),
            &[cout, op.kh * op.kw * cin],
            WeightKind::Conv,
        )?;
        let b = self.weight(&format!("{name}.bias"), &[cout], WeightKind::Vector)?;
        self.g.conv2d(x, w, b, None, op)
    }

    /// A k×k "same" convolution without a bias.
    pub fn conv_nobias(
        &mut self,
        x: TensorId,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> Result<TensorId> {
        let w = self.weight(
            &format!("{name}.weight"),
            &[cout, k * k * cin],
            WeightKind::Conv,
        )?;
        let b = self.weight_of(vec![], &[cout], WeightKind::Vector)?;
        self.g.conv2d(x, w, b, None, Conv2d::same(k, 1))
    }

    /// GroupNorm (affine) of NHWC `x`, optionally followed by SiLU.
    pub fn group_norm(
        &mut self,
        x: TensorId,
        name: &str,
        c: usize,
        groups: usize,
        eps: f32,
        silu: bool,
    ) -> Result<TensorId> {
        let gamma = self.weight(&format!("{name}.weight"), &[c], WeightKind::Vector)?;
        let beta = self.weight(&format!("{name}.bias"), &[c], WeightKind::Vector)?;
        self.g
            .group_norm(x, gamma, beta, None, GroupNorm { groups, eps, silu })
    }

    /// LayerNorm (affine) over the last dimension.
    pub fn layer_norm(&mut self, x: TensorId, name: &str, c: usize, eps: f32) -> Result<TensorId> {
        let w = self.weight(&format!("{name}.weight"), &[c], WeightKind::Vector)?;
        let b = self.weight(&format!("{name}.bias"), &[c], WeightKind::Vector)?;
        self.g.layer_norm(x, Some(w), Some(b), eps)
    }

    /// diffusers' `ResnetBlock2D` (no time embedding when `temb` is None):
    /// `conv2(silu(norm2(conv1(silu(norm1(x))) + proj(temb)))) + shortcut(x)`.
    #[allow(clippy::too_many_arguments)]
    pub fn resnet(
        &mut self,
        x: TensorId,
        temb: Option<(TensorId, usize)>,
        name: &str,
        cin: usize,
        cout: usize,
        groups: usize,
        eps: f32,
    ) -> Result<TensorId> {
        let h = self.group_norm(x, &format!("{name}.norm1"), cin, groups, eps, true)?;
        let mut h = self.conv(h, &format!("{name}.conv1"), cin, cout, 3, 1, None)?;
        if let Some((emb, ted)) = temb {
            let e = self.linear(emb, &format!("{name}.time_emb_proj"), ted, cout, true)?;
            let batch = self.g.info(h)?.shape[0];
            let e = self.g.reshape(e, &[batch, 1, 1, cout])?;
            h = self.g.add(h, e)?;
        }
        let h = self.group_norm(h, &format!("{name}.norm2"), cout, groups, eps, true)?;
        let skip = if cin != cout {
            self.conv(x, &format!("{name}.conv_shortcut"), cin, cout, 1, 1, None)?
        } else {
            x
        };
        self.conv(h, &format!("{name}.conv2"), cout, cout, 3, 1, Some(skip))
    }

    /// Nearest 2× upsampling then a 3×3 conv (`Upsample2D`).
    pub fn upsample(&mut self, x: TensorId, name: &str, c: usize) -> Result<TensorId> {
        let u = self.g.upsample_nearest_2x(x)?;
        self.conv(u, &format!("{name}.conv"), c, c, 3, 1, None)
    }

    /// The shape of `t`.
    pub fn shape(&self, t: TensorId) -> Result<Vec<usize>> {
        Ok(self.g.info(t)?.shape.clone())
    }
}

/// A value read back: its shape and values.
pub type Probe = (Vec<usize>, Vec<f32>);

/// A built module compiled on a backend with its weights uploaded.
pub struct Loaded {
    pub exe: Box<dyn Executable>,
    probes: Vec<(String, TensorId)>,
}

impl Loaded {
    /// Compiles `net` and uploads its weights from `c`.
    pub fn new(
        net: &SdGraph,
        c: &Component,
        backend: &dyn Backend,
    ) -> std::result::Result<Loaded, LoadError> {
        // Every weight the config implies is in the files, element for
        // element, before the config's sizes allocate anything.
        for w in net.weights.iter().filter(|w| !w.sources.is_empty()) {
            c.check_sources(&w.sources, &net.graph.info(w.id)?.shape)?;
        }
        let mut exe = backend.compile(&net.graph)?;
        for w in &net.weights {
            let info = net.graph.info(w.id)?;
            let t = if w.sources.is_empty() {
                crate::host::HostTensor::from_f32(
                    &info.shape,
                    info.dtype,
                    &vec![0.0; info.numel()],
                )?
            } else if w.sources.len() == 1 {
                c.read(&w.sources[0], w.kind, &info.shape, info.dtype)?
            } else {
                c.read_stacked(&w.sources, w.kind, &info.shape, info.dtype)?
            };
            exe.write(w.id, &t)?;
        }
        Ok(Loaded {
            exe,
            probes: net.probes.clone(),
        })
    }

    /// Runs the program and reads `t` back without blocking (the browser's
    /// way; native callers `pollster::block_on` it).
    pub async fn run_read(&mut self, t: TensorId) -> std::result::Result<Vec<f32>, LoadError> {
        self.run_program_read(0, t).await
    }

    /// [`Loaded::run_read`] of program `p`.
    pub async fn run_program_read(
        &mut self,
        p: usize,
        t: TensorId,
    ) -> std::result::Result<Vec<f32>, LoadError> {
        self.exe.run_program(p, &[])?;
        let ticket = self.exe.read_start(t)?;
        self.exe.read_ready(ticket).await;
        Ok(self.exe.read_finish(ticket)?.to_f32()?)
    }

    /// A probed value (after a run): shape and values (NHWC as computed).
    pub fn probe(&mut self, name: &str) -> std::result::Result<Option<Probe>, LoadError> {
        let Some((_, t)) = self.probes.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        let v = self.exe.read(*t)?;
        Ok(Some((v.shape.clone(), v.to_f32()?)))
    }
}
