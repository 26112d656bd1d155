//! The Llama-family decoder as a Kiln graph with two programs over one set of
//! weights and one KV cache: program 0 decodes one token, program 1 prefills
//! a chunk of `prefill_chunk` tokens (the last chunk of a prompt is padded;
//! padding sits after the real tokens, so causal attention never sees it, and
//! its cache rows are overwritten by the tokens that follow).
//!
//! Per layer: `x += W_o · attn(rope(W_q·h), rope(W_k·h), W_v·h)` with
//! `h = rms_norm(x)`, then `x += W_down · swiglu(W_gate·h, W_up·h)` with
//! `h = rms_norm(x)`. The head: `rms_norm` of the last position, `W_out` (or
//! the tied embedding), and an in-graph argmax so greedy decoding reads back
//! only the 4-byte token id. Variants by [`LlamaConfig`]: Q/K/V biases,
//! per-head QK-norm before RoPE, `rms_norm` on the attention and FFN outputs
//! before their residual adds (post-norms), GELU-tanh instead of SiLU on the
//! gate, scaled embeddings, and sliding-window layers with their own RoPE
//! base.

use super::{FfnAct, LlamaConfig};
use crate::backend::Executable;
use crate::dtype::DType;
use crate::graph::{Graph, Sym, TensorId};
use crate::loader::LoadError;
use crate::ops::attention::{NewKv, RopeQ};
use crate::ops::matmul_fused::Fusion;
use crate::ops::rope::{QkNorm, Rope};
use crate::train::lora::Target;

#[derive(Clone, Debug)]
pub struct LlamaOptions {
    /// Longest sequence (prompt + generated tokens) a session can hold.
    pub max_ctx: usize,
    /// Tokens per prefill run.
    pub prefill_chunk: usize,
    /// KV cache storage: F32 (exact) or F16 (half the memory).
    pub kv_dtype: DType,
    /// Use fused kernels: Q/K/V as one matmul over concatenated weights with
    /// RMSNorm folded in (RoPE and the V cache write read windows of its
    /// rows; separate matmuls when dtypes differ or there are biases), and
    /// gate+up+SwiGLU as one: 10 instead of 16 dispatches per layer. Faster
    /// on GPUs (H200: 396 vs 295 tok/s), slower on CPU adapters (lavapipe:
    /// 2.8 vs 7.2 tok/s), so callers pick it with [`LlamaOptions::fused_for`]
    /// (docs/bench/2026-12-03-h200-llm-fused).
    pub fused: bool,
    /// Mark every layer's output (the residual stream) as a graph output, so
    /// parity tools can read hidden states per layer (costs memory: those
    /// buffers are no longer pooled).
    pub debug_layers: bool,
    /// LoRA slots (unmerged adapters): the base stays as stored and each
    /// targeted projection adds `(x·Aᵀ)·Bᵀ` from small state tensors that
    /// [`crate::llm::Llm::set_adapters`] rewrites — switching adapters or
    /// their scales never touches the base.
    pub lora: Option<LoraSlots>,
}

/// Room for adapters in the inference graph: the total rank of all adapters
/// used at once, and the projections they may target.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSlots {
    pub rank: usize,
    pub targets: Vec<crate::train::lora::Target>,
    /// The LoRA path in the base GEMV/GEMM's epilogue (`mul_mat_lora`, one
    /// dispatch fewer per adapted projection); false: a separate
    /// `h·Bᵀ + y` GEMM (kept to measure the difference).
    pub fused: bool,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        LlamaOptions {
            max_ctx: 2048,
            prefill_chunk: 64,
            kv_dtype: DType::F32,
            fused: false,
            debug_layers: false,
            lora: None,
        }
    }
}

impl LlamaOptions {
    /// The prefill chunk for a device: 16 tokens on CPU adapters (lavapipe,
    /// SwiftShader), where a padded row costs as much as a real one; 128 on
    /// GPUs, where a chunk's rows share each weight read.
    /// Tokens per prefill run on the fast CPU backend: enough rows for its
    /// GEMM to reuse each decoded weight block, few enough that a short
    /// chat prompt pays little padding.
    pub const CPU_PREFILL_CHUNK: usize = 32;

    pub fn prefill_chunk_for(caps: &crate::ops::GpuCaps) -> usize {
        if caps.cpu { 16 } else { 128 }
    }

    /// The graph for a device: fused on GPUs, plain on CPU adapters, where
    /// the fused GEMV's per-row normalisation costs more than the dispatches
    /// it saves. LoRA slots need the plain graph.
    pub fn fused_for(caps: &crate::ops::GpuCaps, lora: bool) -> bool {
        !caps.cpu && !lora
    }
}

/// The inputs and outputs of one program.
#[derive(Clone, Debug)]
pub struct StepIo {
    pub program: usize,
    pub tokens: usize,
    /// Token ids `[tokens]` u32.
    pub ids: TensorId,
    /// Prefill only: index `[1]` of the last real token in the chunk.
    pub last: Option<TensorId>,
    /// Logits `[1, vocab]` of the last (real) position.
    pub logits: TensorId,
    /// Greedy next token `[1]` u32.
    pub next: TensorId,
    /// With `debug_layers`: each layer's output `[tokens, d]`.
    pub hidden: Vec<TensorId>,
}

pub struct LlamaGraph {
    pub config: LlamaConfig,
    pub opts: LlamaOptions,
    pub graph: Graph,
    /// Position of the first token of a run.
    pub pos: Sym,
    pub decode: StepIo,
    pub prefill: StepIo,
    /// (tensor name in the model file, graph weight).
    pub weights: Vec<(String, TensorId)>,
    /// KV caches, `[n_kv_heads, max_ctx + prefill_chunk, head_dim]` each.
    pub caches: Vec<TensorId>,
    /// LoRA slots: (layer, target, A `[rank, in]`, B `[out, rank]`).
    pub lora: Vec<(usize, Target, TensorId, TensorId)>,
}

enum FfnIn {
    Fused(TensorId),
    Split(TensorId, TensorId),
}

/// Q, K and V projections: one `[q_dim + 2·kv_dim, d]` weight when fused
/// (same dtype, no biases), else three.
enum QkvIn {
    Fused(TensorId),
    Split(TensorId, TensorId, TensorId),
}

/// Weights concatenated by rows at load time are named `a+b`.
pub const CONCAT: char = '+';

/// The largest fused weight: WebGPU's default storage-binding limit, so a
/// fused weight never needs splitting on any adapter.
const FUSE_MAX_BYTES: usize = 128 << 20;

struct Layer {
    attn_norm: TensorId,
    qkv: QkvIn,
    bias: Option<[TensorId; 3]>,
    qk_norm: Option<QkNorm>,
    /// Post-norms of the attention and FFN outputs.
    post: Option<(TensorId, TensorId)>,
    /// Sliding window of this layer (0: all keys), its RoPE base and
    /// scaling (Gemma 3's local layers keep theirs unscaled).
    window: usize,
    rope_base: f32,
    rope_scaling: Option<crate::ops::rope::Llama3Scaling>,
    wo: TensorId,
    ffn_norm: TensorId,
    /// Gate and up projections: one `[2·ffn, d]` weight when fused, else two.
    ffn_in: FfnIn,
    w_down: TensorId,
    k_cache: TensorId,
    v_cache: TensorId,
    /// LoRA slots: target → (A `[rank, in]`, B `[out, rank]`) state tensors.
    lora: Vec<(Target, TensorId, TensorId)>,
}

/// Looks up a weight's (shape, dtype) as stored in the model file.
pub type WeightLookup<'a> = &'a dyn Fn(&str) -> Result<(Vec<usize>, DType), LoadError>;

/// The longest context (KV-cache rows) a graph may ask for: 2²⁴ tokens.
pub const MAX_CTX: usize = 1 << 24;

/// The layer count from the metadata must be what the file holds, checked
/// before anything is sized by it: at least one layer, and the last layer's
/// tensors present (a hostile `block_count` of 4e9 is an error, not a 4e9-long
/// allocation).
pub fn check_layers(c: &LlamaConfig, file: WeightLookup) -> Result<(), LoadError> {
    if c.n_layers == 0 {
        return Err(LoadError::Corrupt("the model declares 0 layers".into()));
    }
    let last = format!("blk.{}.attn_norm.weight", c.n_layers - 1);
    file(&last).map_err(|_| {
        LoadError::Corrupt(format!(
            "the model declares {} layers but the file has no tensor '{last}'",
            c.n_layers
        ))
    })?;
    Ok(())
}

/// Builds the graph. `file` gives each weight's (shape, dtype) as stored in
/// the model file; shapes are checked against the config.
pub fn build(
    config: &LlamaConfig,
    opts: &LlamaOptions,
    file: WeightLookup,
) -> Result<LlamaGraph, LoadError> {
    let c = config;
    if opts.fused && opts.lora.is_some() {
        return Err(LoadError::Adapter(
            "LoRA slots need the plain graph (not --fused)".into(),
        ));
    }
    if c.fused_qkv && (c.qkv_bias || c.qk_norm) {
        return Err(LoadError::Corrupt(
            "fused Q/K/V weights with biases or QK-norm are not supported".into(),
        ));
    }
    if opts.lora.is_some() && (c.fused_qkv || c.fused_gate_up) {
        return Err(LoadError::Adapter(format!(
            "LoRA slots need separate Q/K/V and gate/up weights; '{}' stores them fused",
            c.arch
        )));
    }
    let mut g = Graph::new();
    let mut weights: Vec<(String, TensorId)> = Vec::new();
    let weight = |g: &mut Graph,
                  weights: &mut Vec<(String, TensorId)>,
                  name: &str,
                  want: &[usize]|
     -> Result<TensorId, LoadError> {
        let (shape, dtype) = file(name)?;
        if shape != want {
            return Err(LoadError::TensorShape {
                name: name.into(),
                got: shape,
                want: want.to_vec(),
            });
        }
        let t = g.weight(name, &shape, dtype)?;
        weights.push((name.to_string(), t));
        Ok(t)
    };
    let (d, hd) = (c.d_model, c.head_dim);
    let (q_dim, kv_dim) = (c.n_heads * hd, c.n_kv_heads * hd);
    check_layers(c, file)?;
    let embd = weight(&mut g, &mut weights, "token_embd.weight", &[c.vocab, d])?;
    let cap = opts
        .max_ctx
        .checked_add(opts.prefill_chunk)
        .filter(|c| *c <= MAX_CTX)
        .ok_or_else(|| {
            LoadError::Kiln(crate::error::KilnError::BadParam {
                op: "llama",
                detail: format!(
                    "a context of {} tokens (+ {} per prefill) is past Kiln's limit of {MAX_CTX}",
                    opts.max_ctx, opts.prefill_chunk
                ),
            })
        })?;
    let mut layers = Vec::with_capacity(c.n_layers);
    for l in 0..c.n_layers {
        let n = |s: &str| format!("blk.{l}.{s}");
        let bias = if c.qkv_bias {
            Some([
                weight(&mut g, &mut weights, &n("attn_q.bias"), &[q_dim])?,
                weight(&mut g, &mut weights, &n("attn_k.bias"), &[kv_dim])?,
                weight(&mut g, &mut weights, &n("attn_v.bias"), &[kv_dim])?,
            ])
        } else {
            None
        };
        let qk_norm = if c.qk_norm {
            Some(QkNorm {
                q: weight(&mut g, &mut weights, &n("attn_q_norm.weight"), &[hd])?,
                k: weight(&mut g, &mut weights, &n("attn_k_norm.weight"), &[hd])?,
                eps: c.rms_eps,
            })
        } else {
            None
        };
        let post = if c.post_norms {
            Some((
                weight(&mut g, &mut weights, &n("post_attention_norm.weight"), &[d])?,
                weight(&mut g, &mut weights, &n("post_ffw_norm.weight"), &[d])?,
            ))
        } else {
            None
        };
        let local = c.is_local(l);
        layers.push(Layer {
            qk_norm,
            post,
            window: if local { c.sliding_window } else { 0 },
            rope_base: match c.rope_base_local {
                Some(b) if local => b,
                _ => c.rope_base,
            },
            // A model with its own local RoPE (Gemma 3) scales only the
            // global layers' (transformers' rope_parameters per layer type,
            // llama.cpp's freq_scale_swa = 1).
            rope_scaling: match c.rope_base_local {
                Some(_) if local => None,
                _ => c.rope_scaling,
            },
            attn_norm: weight(&mut g, &mut weights, &n("attn_norm.weight"), &[d])?,
            qkv: {
                if c.fused_qkv {
                    // Stored fused (Phi-3): one weight whichever the graph.
                    let w = weight(
                        &mut g,
                        &mut weights,
                        &n("attn_qkv.weight"),
                        &[q_dim + 2 * kv_dim, d],
                    )?;
                    QkvIn::Fused(w)
                } else {
                    let names = [n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")];
                    let rows = [q_dim, kv_dim, kv_dim];
                    let found = names
                        .iter()
                        .map(|nm| file(nm))
                        .collect::<Result<Vec<_>, _>>()?;
                    let dt = found[0].1;
                    let same = found
                        .iter()
                        .zip(rows)
                        .all(|((sh, t), r)| *t == dt && sh[..] == [r, d]);
                    let fits = dt
                        .row_bytes(d)
                        .map(|rb| (q_dim + 2 * kv_dim) * rb <= FUSE_MAX_BYTES)
                        .unwrap_or(false);
                    if opts.fused && !c.qkv_bias && !c.qk_norm && same && fits {
                        let name = names.join(&CONCAT.to_string());
                        let t = g.weight(&name, &[q_dim + 2 * kv_dim, d], dt)?;
                        weights.push((name, t));
                        QkvIn::Fused(t)
                    } else {
                        QkvIn::Split(
                            weight(&mut g, &mut weights, &names[0], &[q_dim, d])?,
                            weight(&mut g, &mut weights, &names[1], &[kv_dim, d])?,
                            weight(&mut g, &mut weights, &names[2], &[kv_dim, d])?,
                        )
                    }
                }
            },
            bias,
            wo: weight(&mut g, &mut weights, &n("attn_output.weight"), &[d, q_dim])?,
            ffn_norm: weight(&mut g, &mut weights, &n("ffn_norm.weight"), &[d])?,
            ffn_in: if c.fused_gate_up {
                let w = weight(
                    &mut g,
                    &mut weights,
                    &n("ffn_up.weight"),
                    &[2 * c.ffn_dim, d],
                )?;
                FfnIn::Fused(w)
            } else {
                let (gate, up) = (n("ffn_gate.weight"), n("ffn_up.weight"));
                let (gs, gt) = file(&gate)?;
                let (us, ut) = file(&up)?;
                let fits = gt
                    .row_bytes(d)
                    .map(|rb| 2 * c.ffn_dim * rb <= FUSE_MAX_BYTES)
                    .unwrap_or(false);
                if opts.fused && c.ffn_act == FfnAct::Silu && gt == ut && gs == us && fits {
                    let name = format!("{gate}{CONCAT}{up}");
                    if gs != [c.ffn_dim, d] {
                        return Err(LoadError::TensorShape {
                            name: gate,
                            got: gs,
                            want: vec![c.ffn_dim, d],
                        });
                    }
                    let t = g.weight(&name, &[2 * c.ffn_dim, d], gt)?;
                    weights.push((name, t));
                    FfnIn::Fused(t)
                } else {
                    FfnIn::Split(
                        weight(&mut g, &mut weights, &gate, &[c.ffn_dim, d])?,
                        weight(&mut g, &mut weights, &up, &[c.ffn_dim, d])?,
                    )
                }
            },
            w_down: weight(&mut g, &mut weights, &n("ffn_down.weight"), &[d, c.ffn_dim])?,
            k_cache: g.state(&n("k_cache"), &[c.n_kv_heads, cap, hd], opts.kv_dtype)?,
            v_cache: g.state(&n("v_cache"), &[c.n_kv_heads, cap, hd], opts.kv_dtype)?,
            lora: match &opts.lora {
                None => Vec::new(),
                Some(slots) => slots
                    .targets
                    .iter()
                    .map(|t| {
                        let (i, o) = t.dims(c);
                        let a = g.state(
                            &n(&format!("lora.{}.A", t.module())),
                            &[slots.rank, i],
                            DType::F32,
                        )?;
                        let b = g.state(
                            &n(&format!("lora.{}.B", t.module())),
                            &[o, slots.rank],
                            DType::F32,
                        )?;
                        Ok((*t, a, b))
                    })
                    .collect::<Result<_, LoadError>>()?,
            },
        });
    }
    let out_norm = weight(&mut g, &mut weights, "output_norm.weight", &[d])?;
    let head = if c.tied_embeddings {
        embd
    } else {
        weight(&mut g, &mut weights, "output.weight", &[c.vocab, d])?
    };
    let rope_freqs = if let Some(lr) = c.long_rope {
        Some(weight(
            &mut g,
            &mut weights,
            lr.factors(opts.max_ctx),
            &[c.n_rot / 2],
        )?)
    } else if c.rope_freqs {
        Some(weight(
            &mut g,
            &mut weights,
            "rope_freqs.weight",
            &[c.n_rot / 2],
        )?)
    } else {
        None
    };
    let pos = g.sym("pos");
    let rope = Rope {
        mode: c.rope_mode,
        n_rot: c.n_rot,
        base: c.rope_base,
        scaling: c.rope_scaling,
        pos,
        period: 0,
        inverse: false,
    };

    let lora_fused = opts.lora.as_ref().is_none_or(|l| l.fused);
    let forward = |g: &mut Graph, t: usize, program: usize| -> Result<StepIo, LoadError> {
        let ids = g.input("ids", &[t], DType::U32)?;
        let mut x = g.get_rows(embd, ids)?;
        if let Some(s) = c.embd_scale {
            x = g.scale(x, s)?;
        }
        let mut hidden = Vec::new();
        for ly in &layers {
            // x·Wᵀ (+ res), plus (x·Aᵀ)·Bᵀ for a projection with a LoRA
            // slot: in the GEMV/GEMM epilogue, or (unfused) as a second GEMM.
            let proj = |g: &mut Graph,
                        t: Target,
                        x: TensorId,
                        w: TensorId,
                        res: Option<TensorId>|
             -> Result<TensorId, LoadError> {
                let base = |g: &mut Graph| match res {
                    Some(r) => g.matmul_add(x, w, r),
                    None => g.matmul(x, w),
                };
                Ok(match ly.lora.iter().find(|l| l.0 == t) {
                    Some(&(_, a, b)) => {
                        let h = g.matmul(x, a)?;
                        if lora_fused {
                            g.matmul_lora(x, w, h, b, res)?
                        } else {
                            let y = base(g)?;
                            g.matmul_add(h, b, y)?
                        }
                    }
                    None => base(g)?,
                })
            };
            let norm = Fusion {
                norm: Some((ly.attn_norm, c.rms_eps)),
                ..Default::default()
            };
            let mscale = c.long_rope.map_or(1.0, |l| l.attn_factor);
            let scale = c.attn_scale.unwrap_or(1.0 / (hd as f32).sqrt()) * mscale * mscale;
            let rope = Rope {
                base: ly.rope_base,
                scaling: ly.rope_scaling,
                ..rope
            };
            let a = match ly.qkv {
                // One GEMV/GEMM with the norm folded in; the cache writes and
                // attention read their heads straight out of its rows. K is
                // roped on its way into the cache and Q as attention loads
                // it: four dispatches per layer (QKV, K, V, attention) — two
                // in the decode step, where attention writes the cache rows.
                QkvIn::Fused(w) => {
                    let qkv = g.matmul_fused(x, w, norm)?;
                    let rq = RopeQ {
                        rope,
                        col0: 0,
                        heads: c.n_heads,
                    };
                    if t == 1 {
                        let nk = NewKv {
                            k_col0: q_dim,
                            v_col0: q_dim + kv_dim,
                        };
                        let (kc, vc) = (ly.k_cache, ly.v_cache);
                        g.attention_new_kv(qkv, kc, vc, scale, rq, rope_freqs, ly.window, nk)?
                    } else {
                        let kc =
                            g.write_cache_window_rope(ly.k_cache, qkv, q_dim, rope, rope_freqs)?;
                        let vc = g.write_cache_window(ly.v_cache, qkv, pos, q_dim + kv_dim)?;
                        g.attention_rope_q(qkv, kc, vc, scale, rq, rope_freqs, ly.window)?
                    }
                }
                QkvIn::Split(wq, wk, wv) => {
                    let (q, k, v) = if opts.fused {
                        (
                            g.matmul_fused(x, wq, norm)?,
                            g.matmul_fused(x, wk, norm)?,
                            g.matmul_fused(x, wv, norm)?,
                        )
                    } else {
                        let h = g.rms_norm(x, Some(ly.attn_norm), c.rms_eps)?;
                        (
                            proj(g, Target::Q, h, wq, None)?,
                            proj(g, Target::K, h, wk, None)?,
                            proj(g, Target::V, h, wv, None)?,
                        )
                    };
                    let heads = (c.n_heads, c.n_kv_heads, hd);
                    let [q, k, v] =
                        g.qkv_heads([q, k, v], ly.bias, ly.qk_norm, heads, rope, rope_freqs)?;
                    let kc = g.write_cache(ly.k_cache, k, pos)?;
                    let vc = g.write_cache(ly.v_cache, v, pos)?;
                    g.attention_window(q, kc, vc, scale, pos, ly.window)?
                }
            };
            // The residual add: in the GEMV/GEMM epilogue, or after the
            // output's post-norm.
            let residual = |g: &mut Graph,
                            t: Target,
                            a: TensorId,
                            w: TensorId,
                            x: TensorId,
                            post: Option<TensorId>|
             -> Result<TensorId, LoadError> {
                match post {
                    None => proj(g, t, a, w, Some(x)),
                    Some(pn) => {
                        let y = proj(g, t, a, w, None)?;
                        let y = g.rms_norm(y, Some(pn), c.rms_eps)?;
                        Ok(g.add(x, y)?)
                    }
                }
            };
            x = residual(g, Target::O, a, ly.wo, x, ly.post.map(|p| p.0))?;
            let s = match ly.ffn_in {
                FfnIn::Fused(w) => {
                    let f = Fusion {
                        norm: Some((ly.ffn_norm, c.rms_eps)),
                        glu: true,
                        residual: None,
                    };
                    g.matmul_fused(x, w, f)?
                }
                FfnIn::Split(wg, wu) => {
                    let h = g.rms_norm(x, Some(ly.ffn_norm), c.rms_eps)?;
                    let gate = proj(g, Target::Gate, h, wg, None)?;
                    let up = proj(g, Target::Up, h, wu, None)?;
                    match c.ffn_act {
                        FfnAct::Silu => g.swiglu(gate, up)?,
                        FfnAct::GeluTanh => {
                            let a = g.gelu(gate)?;
                            g.mul(a, up)?
                        }
                    }
                }
            };
            x = residual(g, Target::Down, s, ly.w_down, x, ly.post.map(|p| p.1))?;
            if opts.debug_layers {
                g.mark_output(x)?;
                hidden.push(x);
            }
        }
        let last = if t > 1 {
            let last = g.input("last", &[1], DType::U32)?;
            x = g.get_rows(x, last)?;
            Some(last)
        } else {
            None
        };
        let x = g.rms_norm(x, Some(out_norm), c.rms_eps)?;
        let logits = g.matmul(x, head)?;
        let next = g.argmax(logits)?;
        g.mark_output(logits)?;
        g.mark_output(next)?;
        Ok(StepIo {
            program,
            tokens: t,
            ids,
            last,
            logits,
            next,
            hidden,
        })
    };
    let decode = forward(&mut g, 1, 0)?;
    let program = g.begin_program();
    let prefill = forward(&mut g, opts.prefill_chunk.max(2), program)?;
    let caches = layers.iter().flat_map(|l| [l.k_cache, l.v_cache]).collect();
    let lora = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.lora.iter().map(move |&(t, a, b)| (i, t, a, b)))
        .collect();
    Ok(LlamaGraph {
        config: c.clone(),
        opts: opts.clone(),
        graph: g,
        pos,
        decode,
        prefill,
        weights,
        caches,
        lora,
    })
}

impl LlamaGraph {
    /// Bytes of all weights.
    pub fn weight_bytes(&self) -> u64 {
        self.weights
            .iter()
            .map(|(_, t)| self.graph.tensors[t.0].bytes() as u64)
            .sum()
    }

    /// Zeroes the KV caches (a fresh session).
    pub fn clear_cache(&self, exe: &mut dyn Executable) -> Result<(), LoadError> {
        for c in &self.caches {
            exe.fill(*c, 0)?;
        }
        Ok(())
    }
}
