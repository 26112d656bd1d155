//! Hyper-parameters of the Stable-Diffusion family's modules, read from the
//! `config.json` files of a diffusers folder (`text_encoder/`, `unet/`,
//! `vae/`). Options Kiln does not implement are typed errors that name them,
//! never silently ignored.

use serde_json::Value;

use crate::loader::LoadError;

fn unsupported(module: &str, detail: String) -> LoadError {
    LoadError::UnsupportedModel(format!("{module}: {detail}"))
}

fn get_usize(v: &Value, key: &str, module: &str) -> Result<usize, LoadError> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| LoadError::MissingKey(format!("{module}/config.json: {key}")))
}

fn opt_usize(v: &Value, key: &str, default: usize) -> usize {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or(default, |n| n as usize)
}

fn opt_f32(v: &Value, key: &str, default: f32) -> f32 {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or(default, |n| n as f32)
}

fn opt_bool(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn usize_list(v: &Value, key: &str, module: &str) -> Result<Vec<usize>, LoadError> {
    v.get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect())
        .ok_or_else(|| LoadError::MissingKey(format!("{module}/config.json: {key} (a list)")))
}

fn str_list(v: &Value, key: &str, module: &str) -> Result<Vec<String>, LoadError> {
    v.get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
        .ok_or_else(|| LoadError::MissingKey(format!("{module}/config.json: {key} (a list)")))
}

/// A number or a per-block list (diffusers accepts both), as a list of `n`.
fn per_block(v: &Value, key: &str, n: usize, default: usize) -> Result<Vec<usize>, LoadError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(vec![default; n]),
        Some(Value::Number(x)) => Ok(vec![x.as_u64().unwrap_or(default as u64) as usize; n]),
        Some(Value::Array(a)) if a.len() == n => a
            .iter()
            .map(|x| x.as_u64().map(|n| n as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unsupported("unet", format!("{key}: not a list of integers"))),
        Some(other) => Err(unsupported(
            "unet",
            format!("{key} = {other}: expected a number or a list of {n}"),
        )),
    }
}

/// Refuses a key whose value is set to something other than its default.
fn refuse_set(v: &Value, module: &str, keys: &[&str]) -> Result<(), LoadError> {
    for k in keys {
        match v.get(*k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(x) => {
                return Err(unsupported(
                    module,
                    format!("option {k} = {x} is not supported"),
                ));
            }
        }
    }
    Ok(())
}

/// Upper limits on what a diffusers `config.json` may ask for, checked
/// before anything is built or allocated from it (a hostile config must not
/// make Kiln loop or allocate by its numbers; `tests/sd.rs`). Each is well
/// above the largest published configuration (in brackets).
pub mod limits {
    /// Channels, hidden and feed-forward widths, cross-attention width,
    /// image channels [SDXL: 1280; CLIP-bigG feed-forward: 5120].
    pub const DIM: usize = 1 << 16;
    /// Text-encoder vocabulary [49,408].
    pub const VOCAB: usize = 1 << 20;
    /// Text positions [77].
    pub const POSITIONS: usize = 1 << 12;
    /// Text-encoder layers [CLIP-bigG: 32].
    pub const TEXT_LAYERS: usize = 128;
    /// Down/up blocks of a UNet or autoencoder [4].
    pub const BLOCKS: usize = 8;
    /// ResNet layers per block [SD: 2; TAESD: 3].
    pub const LAYERS_PER_BLOCK: usize = 8;
    /// Transformer layers per attention block [SDXL: 10].
    pub const DEPTH: usize = 16;
    /// Latent or image sample size [SD: 64 / 512].
    pub const SAMPLE: usize = 1 << 14;
    /// Training timesteps of a scheduler [1000].
    pub const TIMESTEPS: usize = 100_000;
}

/// `got` (from `module`'s config key `key`) within `max`.
pub(crate) fn within(module: &str, key: &str, got: usize, max: usize) -> Result<(), LoadError> {
    if got > max {
        return Err(LoadError::Corrupt(format!(
            "{module}/config.json: {key} = {got} is over Kiln's limit of {max}"
        )));
    }
    Ok(())
}

/// `CLIPTextModel` (SD 1.x: quick-GELU; SD 2.x / OpenCLIP ViT-H: GELU).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub max_positions: usize,
    /// `quick_gelu` (true) or exact `gelu`.
    pub quick_gelu: bool,
    pub eps: f32,
}

impl ClipConfig {
    pub fn from_json(v: &Value) -> Result<ClipConfig, LoadError> {
        let m = "text_encoder";
        let act = v
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("quick_gelu");
        let quick_gelu = match act {
            "quick_gelu" => true,
            "gelu" => false,
            other => {
                return Err(unsupported(
                    m,
                    format!("hidden_act '{other}' (Kiln runs quick_gelu, gelu)"),
                ));
            }
        };
        let c = ClipConfig {
            vocab: get_usize(v, "vocab_size", m)?,
            hidden: get_usize(v, "hidden_size", m)?,
            intermediate: get_usize(v, "intermediate_size", m)?,
            layers: get_usize(v, "num_hidden_layers", m)?,
            heads: get_usize(v, "num_attention_heads", m)?,
            max_positions: opt_usize(v, "max_position_embeddings", 77),
            quick_gelu,
            eps: opt_f32(v, "layer_norm_eps", 1e-5),
        };
        within(m, "vocab_size", c.vocab, limits::VOCAB)?;
        within(m, "hidden_size", c.hidden, limits::DIM)?;
        within(m, "intermediate_size", c.intermediate, limits::DIM)?;
        within(m, "num_hidden_layers", c.layers, limits::TEXT_LAYERS)?;
        within(
            m,
            "max_position_embeddings",
            c.max_positions,
            limits::POSITIONS,
        )?;
        if c.heads == 0
            || !c.hidden.is_multiple_of(c.heads)
            || !(c.hidden / c.heads).is_multiple_of(4)
        {
            return Err(unsupported(
                m,
                format!(
                    "hidden_size {} over {} heads (head size must be a multiple of 4)",
                    c.hidden, c.heads
                ),
            ));
        }
        Ok(c)
    }
}

/// One down or up block of a `UNet2DConditionModel`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetBlock {
    pub cross_attention: bool,
    pub channels: usize,
    pub heads: usize,
    /// Transformer blocks per attention (`transformer_layers_per_block`).
    pub depth: usize,
}

/// `UNet2DConditionModel` (SD 1.x, 2.x, SD-Turbo, SDXS, tiny-sd variants).
#[derive(Clone, Debug, PartialEq)]
pub struct Unet2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub sample_size: usize,
    pub down: Vec<UnetBlock>,
    /// Up blocks in execution order (deepest first).
    pub up: Vec<UnetBlock>,
    pub layers_per_block: usize,
    pub mid_block: bool,
    pub mid_heads: usize,
    pub mid_depth: usize,
    pub groups: usize,
    pub eps: f32,
    pub cross_attention_dim: usize,
    pub use_linear_projection: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f32,
    pub time_embed_dim: usize,
}

impl Unet2dConfig {
    pub fn from_json(v: &Value) -> Result<Unet2dConfig, LoadError> {
        let m = "unet";
        refuse_set(
            v,
            m,
            &[
                "class_embed_type",
                "addition_embed_type",
                "encoder_hid_dim",
                "time_cond_proj_dim",
                "dual_cross_attention",
                "only_cross_attention",
                "num_class_embeds",
                "resnet_skip_time_act",
                "conv_out_kernel_other",
                "time_embedding_act_fn",
                "timestep_post_act",
                "mid_block_only_cross_attention",
                "cross_attention_norm",
                "class_embeddings_concat",
                "projection_class_embeddings_input_dim",
                "reverse_transformer_layers_per_block",
                "time_embedding_dim",
                "encoder_hid_dim_type",
                "addition_time_embed_dim",
            ],
        )?;
        let expect = |key: &str, ok: &[&str], default: &str| -> Result<(), LoadError> {
            let got = v.get(key).and_then(Value::as_str).unwrap_or(default);
            if ok.contains(&got) {
                Ok(())
            } else {
                Err(unsupported(m, format!("{key} '{got}' (Kiln runs {ok:?})")))
            }
        };
        expect("act_fn", &["silu"], "silu")?;
        expect("resnet_time_scale_shift", &["default"], "default")?;
        expect("time_embedding_type", &["positional"], "positional")?;
        expect("attention_type", &["default"], "default")?;
        if let Some(f) = v.get("resnet_out_scale_factor").and_then(Value::as_f64)
            && f != 1.0
        {
            return Err(unsupported(m, format!("resnet_out_scale_factor = {f}")));
        }
        for (k, d) in [
            ("conv_in_kernel", 3),
            ("conv_out_kernel", 3),
            ("downsample_padding", 1),
        ] {
            if opt_usize(v, k, d) != d {
                return Err(unsupported(
                    m,
                    format!("{k} = {} (Kiln runs {d})", opt_usize(v, k, d)),
                ));
            }
        }
        if let Some(s) = v.get("mid_block_scale_factor").and_then(Value::as_f64)
            && s != 1.0
        {
            return Err(unsupported(m, format!("mid_block_scale_factor = {s}")));
        }
        let channels = usize_list(v, "block_out_channels", m)?;
        let n = channels.len();
        within(m, "block_out_channels (blocks)", n, limits::BLOCKS)?;
        for &c in &channels {
            within(m, "block_out_channels", c, limits::DIM)?;
        }
        let down_types = str_list(v, "down_block_types", m)?;
        let up_types = str_list(v, "up_block_types", m)?;
        if n == 0 || down_types.len() != n || up_types.len() != n {
            return Err(unsupported(
                m,
                format!(
                    "{n} block_out_channels, {} down and {} up blocks",
                    down_types.len(),
                    up_types.len()
                ),
            ));
        }
        // diffusers' naming quirk: without num_attention_heads,
        // attention_head_dim is the number of heads.
        let heads = match v.get("num_attention_heads") {
            None | Some(Value::Null) => per_block(v, "attention_head_dim", n, 8)?,
            Some(_) => per_block(v, "num_attention_heads", n, 8)?,
        };
        let depth = per_block(v, "transformer_layers_per_block", n, 1)?;
        let block = |t: &str, i: usize, up: bool| -> Result<UnetBlock, LoadError> {
            let cross = match (t, up) {
                ("CrossAttnDownBlock2D", false) | ("CrossAttnUpBlock2D", true) => true,
                ("DownBlock2D", false) | ("UpBlock2D", true) => false,
                _ => return Err(unsupported(m, format!("block type '{t}'"))),
            };
            let c = channels[i];
            if cross && (heads[i] == 0 || c % heads[i] != 0) {
                return Err(unsupported(
                    m,
                    format!("{c} channels over {} heads", heads[i]),
                ));
            }
            Ok(UnetBlock {
                cross_attention: cross,
                channels: c,
                heads: heads[i],
                depth: depth[i],
            })
        };
        let down = (0..n)
            .map(|i| block(&down_types[i], i, false))
            .collect::<Result<Vec<_>, _>>()?;
        let up = (0..n)
            .map(|i| block(&up_types[i], n - 1 - i, true))
            .collect::<Result<Vec<_>, _>>()?;
        let mid_block = match v.get("mid_block_type") {
            None => true,
            Some(Value::Null) => false,
            Some(Value::String(s)) if s == "UNetMidBlock2DCrossAttn" => true,
            Some(other) => return Err(unsupported(m, format!("mid_block_type {other}"))),
        };
        let c = Unet2dConfig {
            in_channels: opt_usize(v, "in_channels", 4),
            out_channels: opt_usize(v, "out_channels", 4),
            sample_size: opt_usize(v, "sample_size", 64),
            down,
            up,
            layers_per_block: opt_usize(v, "layers_per_block", 2),
            mid_block,
            mid_heads: heads[n - 1],
            mid_depth: depth[n - 1],
            groups: opt_usize(v, "norm_num_groups", 32),
            eps: opt_f32(v, "norm_eps", 1e-5),
            cross_attention_dim: get_usize(v, "cross_attention_dim", m)?,
            use_linear_projection: opt_bool(v, "use_linear_projection", false),
            flip_sin_to_cos: opt_bool(v, "flip_sin_to_cos", true),
            freq_shift: opt_f32(v, "freq_shift", 0.0),
            time_embed_dim: channels[0] * 4,
        };
        for (key, got, max) in [
            ("in_channels", c.in_channels, limits::DIM),
            ("out_channels", c.out_channels, limits::DIM),
            ("sample_size", c.sample_size, limits::SAMPLE),
            (
                "layers_per_block",
                c.layers_per_block,
                limits::LAYERS_PER_BLOCK,
            ),
            ("cross_attention_dim", c.cross_attention_dim, limits::DIM),
        ] {
            within(m, key, got, max)?;
        }
        for b in c.down.iter().chain(&c.up) {
            within(m, "transformer_layers_per_block", b.depth, limits::DEPTH)?;
        }
        for ch in &channels {
            if c.groups == 0 || ch % c.groups != 0 {
                return Err(unsupported(
                    m,
                    format!("{ch} channels in {} groups", c.groups),
                ));
            }
        }
        for b in c.down.iter().chain(&c.up) {
            if b.cross_attention
                && b.channels / b.heads > crate::ops::spatial_attention::MAX_HEAD_DIM
            {
                return Err(unsupported(
                    m,
                    format!(
                        "attention head size {} > {}",
                        b.channels / b.heads,
                        crate::ops::spatial_attention::MAX_HEAD_DIM
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// The latent size must be a multiple of this.
    pub fn size_multiple(&self) -> usize {
        1 << (self.down.len() - 1)
    }
}

/// `AutoencoderKL` (the decoder half; SD 1.x/2.x, SD-Turbo, tiny variants).
#[derive(Clone, Debug, PartialEq)]
pub struct VaeConfig {
    pub latent_channels: usize,
    pub out_channels: usize,
    pub channels: Vec<usize>,
    pub layers_per_block: usize,
    pub groups: usize,
    pub scaling_factor: f32,
    pub shift_factor: f32,
    pub post_quant_conv: bool,
    pub mid_attention: bool,
    /// Image channels the encoder takes.
    pub in_channels: usize,
    /// `quant_conv` after the encoder (`use_quant_conv`).
    pub quant_conv: bool,
    /// The encoder's block types (checked when an encoder is built: a
    /// decoder-only use of the folder does not need them).
    pub down_block_types: Vec<String>,
    /// The image size the VAE was trained at (`sample_size`; the first
    /// entry of a list, as diffusers takes it): the tile of tiled decoding.
    pub sample_size: usize,
}

impl VaeConfig {
    pub fn from_json(v: &Value) -> Result<VaeConfig, LoadError> {
        let m = "vae";
        let channels = usize_list(v, "block_out_channels", m)?;
        let up = str_list(v, "up_block_types", m)?;
        if channels.is_empty() || up.len() != channels.len() {
            return Err(unsupported(
                m,
                "block_out_channels and up_block_types differ in length".into(),
            ));
        }
        within(
            m,
            "block_out_channels (blocks)",
            channels.len(),
            limits::BLOCKS,
        )?;
        for &c in &channels {
            within(m, "block_out_channels", c, limits::DIM)?;
        }
        if let Some(t) = up.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(unsupported(m, format!("up block type '{t}'")));
        }
        if let Some(a) = v.get("act_fn").and_then(Value::as_str)
            && a != "silu"
        {
            return Err(unsupported(m, format!("act_fn '{a}'")));
        }
        let c = VaeConfig {
            latent_channels: opt_usize(v, "latent_channels", 4),
            out_channels: opt_usize(v, "out_channels", 3),
            channels,
            layers_per_block: opt_usize(v, "layers_per_block", 1),
            groups: opt_usize(v, "norm_num_groups", 32),
            scaling_factor: opt_f32(v, "scaling_factor", 0.18215),
            shift_factor: opt_f32(v, "shift_factor", 0.0),
            post_quant_conv: opt_bool(v, "use_post_quant_conv", true),
            mid_attention: opt_bool(v, "mid_block_add_attention", true),
            in_channels: opt_usize(v, "in_channels", 3),
            quant_conv: opt_bool(v, "use_quant_conv", true),
            down_block_types: str_list(v, "down_block_types", m).unwrap_or_default(),
            // diffusers' AutoencoderKL default.
            sample_size: match v.get("sample_size") {
                Some(Value::Array(a)) => a.first().and_then(Value::as_u64).unwrap_or(32) as usize,
                _ => opt_usize(v, "sample_size", 32),
            },
        };
        for (key, got, max) in [
            ("latent_channels", c.latent_channels, limits::DIM),
            ("out_channels", c.out_channels, limits::DIM),
            ("in_channels", c.in_channels, limits::DIM),
            (
                "layers_per_block",
                c.layers_per_block,
                limits::LAYERS_PER_BLOCK,
            ),
            ("sample_size", c.sample_size, limits::SAMPLE),
        ] {
            within(m, key, got, max)?;
        }
        for ch in &c.channels {
            if c.groups == 0 || ch % c.groups != 0 {
                return Err(unsupported(
                    m,
                    format!("{ch} channels in {} groups", c.groups),
                ));
            }
        }
        Ok(c)
    }

    /// Image pixels per latent pixel.
    pub fn scale(&self) -> usize {
        1 << (self.channels.len() - 1)
    }
}
