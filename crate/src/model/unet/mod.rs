//! The guided-diffusion `UNetModel` family (OpenAI's improved/guided
//! diffusion and consistency models) on Kiln's graph, with EDM
//! preconditioning: the terrain consistency model and any export of the same
//! family. Kiln builds its own graph from a [`UnetConfig`] and reads weights by
//! name; nothing of the ONNX graph is interpreted op by op.
//!
//! Layout: NHWC activations (see ARCHITECTURE.md); conv weights permuted to
//! `[Cout, kh·kw·Cin]` at load. Per sample the host computes the EDM scalars
//! (`c_in`, `c_skip`, `c_out`, `c_noise`, four numbers); the device does the
//! rest: `F(c_in·x, emb(c_noise, label))`, then `c_skip·x + c_out·F`. The
//! output clip (`[-1, 1]` for the terrain model) is applied when reading back.

pub mod config;
mod weights;

pub use config::{Edm, UnetConfig};
pub use weights::{UnetWeights, device_tensor, find_prefix};

use crate::backend::{Backend, Executable};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::ops::conv2d::Conv2d;
use crate::ops::group_norm::GroupNorm;
use crate::ops::spatial_attention::SpatialAttention;
use crate::ops::timestep::TimestepEmbed;

/// How a weight tensor is stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    /// A conv kernel `[Cout, Cin, kh, kw]` stored `[Cout, kh·kw·Cin]`.
    Conv,
    /// A Linear/Gemm matrix `[out, in]`.
    Linear,
    /// A vector (bias, GroupNorm γ/β) stored f32 `[n]`.
    Vector,
}

/// The device dtype of a weight: vectors (and everything without a
/// requested type) f32; matrices `want` when their rows are whole blocks
/// of it, else f32.
pub fn storage_dtype(kind: WeightKind, shape: &[usize], want: Option<DType>) -> DType {
    match (kind, want) {
        (WeightKind::Vector, _) | (_, None) => DType::F32,
        (_, Some(d))
            if shape
                .get(1)
                .is_some_and(|k| k.is_multiple_of(d.block_size())) =>
        {
            d
        }
        _ => DType::F32,
    }
}

/// One weight of the graph: its guided-diffusion name and how to store it.
#[derive(Clone, Debug)]
pub struct WeightSpec {
    pub id: TensorId,
    pub name: String,
    pub kind: WeightKind,
}

/// The UNet's graph for a fixed batch and image size.
pub struct UnetGraph {
    pub graph: Graph,
    pub weights: Vec<WeightSpec>,
    /// `[B, H, W, Cin]` noisy input.
    pub noisy: TensorId,
    /// Per-sample EDM scalars `[B, 1, 1, 1]`.
    pub c_in: TensorId,
    pub c_skip: TensorId,
    pub c_out: TensorId,
    /// `[B]` noise-level input of the timestep embedding.
    pub c_noise: TensorId,
    /// `[B, 1]` label (difficulty) input.
    pub label: TensorId,
    /// `[B, H, W, Cout]` denoised output.
    pub output: TensorId,
    /// Block outputs marked readable (with `probes: true`), by module path.
    pub probes: Vec<(String, TensorId)>,
}

/// Options of [`build`].
#[derive(Clone, Debug, Default)]
pub struct UnetOptions {
    /// Store conv and linear weights as this type (F16, BF16, Q8_0; rows
    /// whose length is not a whole number of blocks stay f32).
    pub weight_dtype: Option<DType>,
    /// Mark every block's output readable (for per-block parity).
    pub probes: bool,
}

struct Builder<'a> {
    g: Graph,
    weights: Vec<WeightSpec>,
    cfg: &'a UnetConfig,
    opts: &'a UnetOptions,
    probes: Vec<(String, TensorId)>,
}

impl Builder<'_> {
    fn weight(&mut self, name: &str, shape: &[usize], kind: WeightKind) -> Result<TensorId> {
        let dtype = storage_dtype(kind, shape, self.opts.weight_dtype);
        let id = self.g.weight(name, shape, dtype)?;
        self.weights.push(WeightSpec {
            id,
            name: name.into(),
            kind,
        });
        Ok(id)
    }

    fn probe(&mut self, name: &str, t: TensorId) -> Result<()> {
        if self.opts.probes {
            self.g.mark_output(t)?;
            self.probes.push((name.into(), t));
        }
        Ok(())
    }

    fn linear(&mut self, x: TensorId, name: &str, n_in: usize, n_out: usize) -> Result<TensorId> {
        let w = self.weight(
            &format!("{name}.weight"),
            &[n_out, n_in],
            WeightKind::Linear,
        )?;
        let b = self.weight(&format!("{name}.bias"), &[n_out], WeightKind::Vector)?;
        let y = self.g.matmul(x, w)?;
        self.g.add(y, b)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: TensorId,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        res: Option<TensorId>,
    ) -> Result<TensorId> {
        let w = self.weight(
            &format!("{name}.weight"),
            &[cout, k * k * cin],
            WeightKind::Conv,
        )?;
        let b = self.weight(&format!("{name}.bias"), &[cout], WeightKind::Vector)?;
        self.g.conv2d(x, w, b, res, Conv2d::same(k, 1))
    }

    fn norm(
        &mut self,
        x: TensorId,
        name: &str,
        c: usize,
        ss: Option<TensorId>,
        silu: bool,
    ) -> Result<TensorId> {
        let gamma = self.weight(&format!("{name}.weight"), &[c], WeightKind::Vector)?;
        let beta = self.weight(&format!("{name}.bias"), &[c], WeightKind::Vector)?;
        let op = GroupNorm {
            groups: self.cfg.groups,
            eps: self.cfg.eps,
            silu,
        };
        self.g.group_norm(x, gamma, beta, ss, op)
    }

    /// guided-diffusion's ResBlock; `updown` −1 down-samples, +1 up-samples.
    fn res_block(
        &mut self,
        x: TensorId,
        emb: TensorId,
        name: &str,
        cin: usize,
        cout: usize,
        updown: i8,
    ) -> Result<TensorId> {
        let ted = self.cfg.time_embed_dim;
        let mut h = self.norm(x, &format!("{name}.in_layers.0"), cin, None, true)?;
        let mut x = x;
        match updown {
            -1 => {
                h = self.g.avg_pool_2x2(h)?;
                x = self.g.avg_pool_2x2(x)?;
            }
            1 => {
                h = self.g.upsample_nearest_2x(h)?;
                x = self.g.upsample_nearest_2x(x)?;
            }
            _ => {}
        }
        h = self.conv(h, &format!("{name}.in_layers.2"), cin, cout, 3, None)?;
        let ss = self.cfg.use_scale_shift_norm;
        let e = self.linear(
            emb,
            &format!("{name}.emb_layers.1"),
            ted,
            if ss { 2 * cout } else { cout },
        )?;
        let out_norm = format!("{name}.out_layers.0");
        h = if ss {
            self.norm(h, &out_norm, cout, Some(e), true)?
        } else {
            let batch = self.g.info(h)?.shape[0];
            let e = self.g.reshape(e, &[batch, 1, 1, cout])?;
            let h = self.g.add(h, e)?;
            self.norm(h, &out_norm, cout, None, true)?
        };
        let skip = if cin != cout {
            self.conv(x, &format!("{name}.skip_connection"), cin, cout, 1, None)?
        } else {
            x
        };
        self.conv(
            h,
            &format!("{name}.out_layers.3"),
            cout,
            cout,
            3,
            Some(skip),
        )
    }

    fn attention(&mut self, x: TensorId, name: &str, c: usize) -> Result<TensorId> {
        let [b, h, w, _] = self.g.info(x)?.shape[..] else {
            return Err(crate::error::KilnError::BadInput {
                name: name.into(),
                detail: "attention input must be 4-D".into(),
            });
        };
        let n = self.norm(x, &format!("{name}.norm"), c, None, false)?;
        let qkv = self.conv(n, &format!("{name}.qkv"), c, 3 * c, 1, None)?;
        let qkv = self.g.reshape(qkv, &[b, h * w, 3 * c])?;
        let op = SpatialAttention {
            heads: self.cfg.heads(c),
            legacy: !self.cfg.new_attention_order,
        };
        let a = self.g.spatial_attention(qkv, op)?;
        let a = self.g.reshape(a, &[b, h, w, c])?;
        self.conv(a, &format!("{name}.proj_out"), c, c, 1, Some(x))
    }
}

/// Builds the UNet with EDM preconditioning for `batch` images of `h × w`
/// (each a multiple of 2^(levels−1)).
pub fn build(
    cfg: &UnetConfig,
    batch: usize,
    h: usize,
    w: usize,
    opts: &UnetOptions,
) -> Result<UnetGraph> {
    let bad = |detail: String| crate::error::KilnError::BadInput {
        name: "unet".into(),
        detail,
    };
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    let m = 1usize << (cfg.levels() - 1);
    if batch == 0 || h == 0 || w == 0 || !h.is_multiple_of(m) || !w.is_multiple_of(m) {
        return Err(bad(format!(
            "{h}×{w} (batch {batch}) must be non-empty multiples of {m}"
        )));
    }
    let mut b = Builder {
        g: Graph::new(),
        weights: Vec::new(),
        cfg,
        opts,
        probes: Vec::new(),
    };
    let (mc, ted) = (cfg.model_channels, cfg.time_embed_dim);
    let noisy =
        b.g.input("noisy", &[batch, h, w, cfg.in_channels], DType::F32)?;
    let scalar = |g: &mut Graph, n: &str| g.input(n, &[batch, 1, 1, 1], DType::F32);
    let c_in = scalar(&mut b.g, "c_in")?;
    let c_skip = scalar(&mut b.g, "c_skip")?;
    let c_out = scalar(&mut b.g, "c_out")?;
    let c_noise = b.g.input("c_noise", &[batch], DType::F32)?;
    let label = b.g.input("label", &[batch, 1], DType::F32)?;

    // Embeddings: time MLP(sinusoid(c_noise)) + label MLP(label), then SiLU once.
    let ts = b.g.timestep_embed(
        c_noise,
        TimestepEmbed {
            dim: mc,
            max_period: cfg.timestep_max_period,
            freq_shift: 0.0,
            sin_first: false,
        },
    )?;
    b.probe("timestep_embedding", ts)?;
    let t = b.linear(ts, "time_embed.0", mc, ted)?;
    let t = b.g.silu(t)?;
    let t = b.linear(t, "time_embed.2", ted, ted)?;
    b.probe("time_embed", t)?;
    let l = b.linear(label, "label_emb.0", 1, ted)?;
    let l = b.g.silu(l)?;
    let l = b.linear(l, "label_emb.2", ted, ted)?;
    b.probe("label_emb", l)?;
    let emb = b.g.add(t, l)?;
    b.probe("emb", emb)?;
    let emb = b.g.silu(emb)?;

    // Input blocks.
    let x = b.g.mul(noisy, c_in)?;
    let mut hcur = b.conv(x, "input_blocks.0.0", cfg.in_channels, mc, 3, None)?;
    b.probe("input_blocks.0", hcur)?;
    let mut skips = vec![(hcur, mc)];
    let mut ch = mc;
    let mut idx = 1;
    for (level, mult) in cfg.channel_mult.iter().enumerate() {
        let ds = 1usize << level;
        for _ in 0..cfg.num_res_blocks {
            let name = format!("input_blocks.{idx}");
            hcur = b.res_block(hcur, emb, &format!("{name}.0"), ch, mult * mc, 0)?;
            ch = mult * mc;
            if cfg.attention_ds.contains(&ds) {
                hcur = b.attention(hcur, &format!("{name}.1"), ch)?;
            }
            b.probe(&name, hcur)?;
            skips.push((hcur, ch));
            idx += 1;
        }
        if level + 1 < cfg.levels() {
            let name = format!("input_blocks.{idx}");
            hcur = b.res_block(hcur, emb, &format!("{name}.0"), ch, ch, -1)?;
            b.probe(&name, hcur)?;
            skips.push((hcur, ch));
            idx += 1;
        }
    }
    // Middle.
    hcur = b.res_block(hcur, emb, "middle_block.0", ch, ch, 0)?;
    hcur = b.attention(hcur, "middle_block.1", ch)?;
    hcur = b.res_block(hcur, emb, "middle_block.2", ch, ch, 0)?;
    b.probe("middle_block", hcur)?;
    // Output blocks: concat([h, skip]) on channels, h first.
    let mut idx = 0;
    for (level, mult) in cfg.channel_mult.iter().enumerate().rev() {
        let ds = 1usize << level;
        for i in 0..=cfg.num_res_blocks {
            let (skip, sc) = skips
                .pop()
                .ok_or_else(|| bad("skip stack underflow".into()))?;
            let name = format!("output_blocks.{idx}");
            let cat = b.g.concat(hcur, skip, 3)?;
            hcur = b.res_block(cat, emb, &format!("{name}.0"), ch + sc, mult * mc, 0)?;
            ch = mult * mc;
            let mut sub = 1;
            if cfg.attention_ds.contains(&ds) {
                hcur = b.attention(hcur, &format!("{name}.1"), ch)?;
                sub = 2;
            }
            if level > 0 && i == cfg.num_res_blocks {
                hcur = b.res_block(hcur, emb, &format!("{name}.{sub}"), ch, ch, 1)?;
            }
            b.probe(&name, hcur)?;
            idx += 1;
        }
    }
    let o = b.norm(hcur, "out.0", ch, None, true)?;
    b.probe("out.1", o)?;
    let f = b.conv(o, "out.2", ch, cfg.out_channels, 3, None)?;
    b.probe("out.2", f)?;
    // EDM: c_skip·noisy + c_out·F.
    let scaled = b.g.mul(f, c_out)?;
    let skipped = b.g.mul(noisy, c_skip)?;
    let output = b.g.add(scaled, skipped)?;
    b.g.mark_output(output)?;
    Ok(UnetGraph {
        graph: b.g,
        weights: b.weights,
        noisy,
        c_in,
        c_skip,
        c_out,
        c_noise,
        label,
        output,
        probes: b.probes,
    })
}

/// A compiled UNet on one backend with its weights uploaded.
pub struct Unet {
    pub cfg: UnetConfig,
    pub net: UnetGraph,
    pub exe: Box<dyn Executable>,
    pub batch: usize,
    pub size: (usize, usize),
}

impl Unet {
    /// Builds, compiles and uploads (progress: `on_weight(done, total)`).
    pub fn load(
        weights: &UnetWeights,
        cfg: &UnetConfig,
        backend: &dyn Backend,
        batch: usize,
        size: (usize, usize),
        opts: &UnetOptions,
    ) -> std::result::Result<Unet, LoadError> {
        let net = build(cfg, batch, size.0, size.1, opts)?;
        let mut exe = backend.compile(&net.graph)?;
        for w in &net.weights {
            let info = net.graph.info(w.id)?;
            let t = weights.read(&w.name, w.kind, &info.shape, info.dtype)?;
            exe.write(w.id, &t)?;
        }
        Ok(Unet {
            cfg: cfg.clone(),
            net,
            exe,
            batch,
            size,
        })
    }

    /// Runs one denoising call: `noisy` NCHW `[B, Cin, H, W]` (as ONNX feeds
    /// it), per-sample `sigma` and `label`. Returns NCHW `[B, Cout, H, W]`,
    /// clipped as the model's config says. Blocks until the result is read;
    /// hosts that must not block (the web) use [`Unet::denoise_async`].
    pub fn denoise(
        &mut self,
        noisy: &[f32],
        sigma: &[f32],
        label: &[f32],
    ) -> std::result::Result<Vec<f32>, LoadError> {
        pollster::block_on(self.denoise_async(noisy, sigma, label))
    }

    /// [`Unet::denoise`] awaiting the device instead of blocking.
    pub async fn denoise_async(
        &mut self,
        noisy: &[f32],
        sigma: &[f32],
        label: &[f32],
    ) -> std::result::Result<Vec<f32>, LoadError> {
        let (b, (h, w)) = (self.batch, self.size);
        let (cin, cout) = (self.cfg.in_channels, self.cfg.out_channels);
        if noisy.len() != b * cin * h * w || sigma.len() != b || label.len() != b {
            return Err(LoadError::Kiln(crate::error::KilnError::BadInput {
                name: "denoise".into(),
                detail: format!("expects {b} samples of {cin}×{h}×{w}, {b} sigmas and {b} labels"),
            }));
        }
        if let Some(s) = sigma.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(LoadError::Kiln(crate::error::KilnError::BadInput {
                name: "sigma".into(),
                detail: format!("{s} is not a positive noise level"),
            }));
        }
        let n = &self.net;
        let scal: Vec<[f64; 4]> = sigma
            .iter()
            .map(|s| self.cfg.edm.scalings(*s as f64))
            .collect();
        let col = |i: usize| -> Vec<f32> { scal.iter().map(|s| s[i] as f32).collect() };
        let exe = self.exe.as_mut();
        exe.write(
            n.noisy,
            &HostTensor::from_f32(
                &[b, h, w, cin],
                DType::F32,
                &nchw_to_nhwc(noisy, b, cin, h * w),
            )?,
        )?;
        for (t, i) in [(n.c_in, 0), (n.c_skip, 1), (n.c_out, 2)] {
            exe.write(
                t,
                &HostTensor::from_f32(&[b, 1, 1, 1], DType::F32, &col(i))?,
            )?;
        }
        exe.write(n.c_noise, &HostTensor::from_f32(&[b], DType::F32, &col(3))?)?;
        exe.write(n.label, &HostTensor::from_f32(&[b, 1], DType::F32, label)?)?;
        exe.run(&[])?;
        let ticket = exe.read_start(n.output)?;
        exe.read_ready(ticket).await;
        let y = exe.read_finish(ticket)?.to_f32()?;
        let mut y = nhwc_to_nchw(&y, b, cout, h * w);
        if let Some((lo, hi)) = self.cfg.output_clip {
            for v in &mut y {
                *v = v.clamp(lo, hi);
            }
        }
        Ok(y)
    }

    /// A probed block output (after [`Unet::denoise`]) as NCHW.
    pub fn probe(&mut self, name: &str) -> std::result::Result<Option<Activation>, LoadError> {
        let Some((_, t)) = self.net.probes.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        let v = self.exe.read(*t)?;
        let s = v.shape.clone();
        let data = v.to_f32()?;
        Ok(Some(match s[..] {
            [b, h, w, c] => (vec![b, c, h, w], nhwc_to_nchw(&data, b, c, h * w)),
            _ => (s, data),
        }))
    }
}

/// A block output read back: NCHW shape and values.
pub type Activation = (Vec<usize>, Vec<f32>);

/// `[B, C, P]` → `[B, P, C]`.
pub fn nchw_to_nhwc(x: &[f32], b: usize, c: usize, p: usize) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for n in 0..b {
        for ch in 0..c {
            for i in 0..p {
                y[(n * p + i) * c + ch] = x[(n * c + ch) * p + i];
            }
        }
    }
    y
}

/// `[B, P, C]` → `[B, C, P]`.
pub fn nhwc_to_nchw(x: &[f32], b: usize, c: usize, p: usize) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for n in 0..b {
        for ch in 0..c {
            for i in 0..p {
                y[(n * c + ch) * p + i] = x[(n * p + i) * c + ch];
            }
        }
    }
    y
}
