//! The LoRA training graph of a Llama-family model: the base weights in
//! their file dtypes (frozen; a Q4_1 base stays Q4_1 on the device), the
//! LoRA factors, their gradient accumulators and AdamW moments as `State`,
//! and three programs over them:
//!
//! * [`STEP`]: forward over a batch of `batch` sequences of `seq` tokens,
//!   the loss head in row chunks (logits of `head_rows` rows at a time:
//!   loss, `dlogits`, `dh` — the `[tokens, vocab]` logits never exist at
//!   once), the backward of every block (each block recomputed before its
//!   backward), and `grad += dθ` for every factor. Run once per micro-batch.
//! * [`UPDATE`]: per-factor gradient norms, the global clip coefficient,
//!   AdamW (moments, then parameters), gradients zeroed.
//! * [`EVAL`]: forward and per-row losses only (validation).
//!
//! Memory (f32 activations, T = batch·seq tokens, d model width, f FFN
//! width, L layers, V vocab, c = head_rows): the block boundaries `L·T·d`
//! live across the step; one block's recomputed activations and gradients
//! (≈ `T·(8d + 6f)`) and one head chunk (`2·c·V` for logits and their
//! gradient) are live at a time. See the training section of ARCHITECTURE.md.

use std::collections::HashMap;

use super::lora::{Adapter, Factor, LoraConfig, Target, hf_to_gguf_rows, peft_name};
use crate::dtype::DType;
use crate::graph::{Graph, Sym, TensorId};
use crate::loader::LoadError;
use crate::model::LlamaConfig;
use crate::model::llama::WeightLookup;
use crate::ops::optim::{HYPER_LEN, Optim};
use crate::ops::rope::{Rope, RopeMode};

pub const STEP: usize = 0;
pub const UPDATE: usize = 1;
pub const EVAL: usize = 2;

#[derive(Clone, Debug)]
pub struct TrainShape {
    /// Sequences per micro-batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Rows of logits computed at once in the loss head.
    pub head_rows: usize,
    /// Global gradient-norm clip (≤ 0: off).
    pub max_grad_norm: f32,
    /// Recompute each block's activations before its backward (bounded
    /// memory); off keeps every block's forward activations live.
    pub recompute: bool,
}

/// One trainable LoRA factor and its optimizer tensors.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub layer: usize,
    pub target: Target,
    pub factor: Factor,
    pub shape: Vec<usize>,
    pub value: TensorId,
    pub grad: TensorId,
    /// AdamW's `[2, n]`: first then second moments.
    pub moments: TensorId,
    /// GGUF row order differs from PEFT's (q/k B of interleaved-RoPE files):
    /// graph row `i` holds PEFT row `rows[i]`.
    pub rows: Option<Vec<usize>>,
}

/// Inputs and outputs of one forward (STEP or EVAL).
#[derive(Clone, Debug)]
pub struct Io {
    /// Token ids `[batch·seq]` u32.
    pub ids: TensorId,
    /// Per head chunk: labels `[rows]` u32 (the next token, or MASKED).
    pub labels: Vec<TensorId>,
    /// Per head chunk: per-row losses `[rows]` (graph outputs).
    pub losses: Vec<TensorId>,
}

/// What one forward pushes: (ids input, final hidden state, each block's
/// node range, the first block node).
type Forward = (TensorId, TensorId, Vec<std::ops::Range<usize>>, usize);

pub struct TrainGraph {
    pub config: LlamaConfig,
    pub lora: LoraConfig,
    pub shape: TrainShape,
    pub graph: Graph,
    pub pos: Sym,
    /// The seed of the LoRA dropout masks (a new value per micro-batch).
    pub dropout_seed: Sym,
    /// (tensor name in the model file, graph weight).
    pub weights: Vec<(String, TensorId)>,
    pub params: Vec<Param>,
    pub step: Io,
    pub eval: Io,
    /// `[1]`: 1 / the number of trained targets of the whole step.
    pub loss_scale: TensorId,
    /// `[HYPER_LEN]`: AdamW's per-step scalars (see ops::optim).
    pub hyper: TensorId,
    /// `[n_params]`: per-factor gradient norms of the last update.
    pub norms: TensorId,
    /// `[2]`: (global gradient norm before clipping, clip coefficient).
    pub clip: TensorId,
}

struct Block {
    attn_norm: TensorId,
    w: HashMap<Target, TensorId>,
    ffn_norm: TensorId,
    bias: Option<[TensorId; 3]>,
}

/// Builds the training graph. `file` gives each base weight's (shape, dtype).
pub fn build(
    c: &LlamaConfig,
    lora: &LoraConfig,
    shape: &TrainShape,
    file: WeightLookup,
) -> Result<TrainGraph, LoadError> {
    let bad = |m: String| LoadError::Train(m);
    if shape.batch == 0 || shape.seq < 2 || shape.head_rows == 0 {
        return Err(bad(
            "batch ≥ 1, seq-len ≥ 2 and head rows ≥ 1 are required".into()
        ));
    }
    if lora.rank == 0 || lora.targets.is_empty() {
        return Err(bad("LoRA rank and targets must be non-empty".into()));
    }
    // A window no shorter than the sequence changes nothing.
    let mut ext = c.extensions();
    if c.sliding_window >= shape.seq {
        ext.retain(|e| *e != "sliding-window attention");
    }
    if !ext.is_empty() {
        return Err(bad(format!(
            "LoRA training builds the Llama/Mistral/Qwen2 block; '{}' needs {} (inference only for now)",
            c.arch,
            ext.join(", ")
        )));
    }
    let mut g = Graph::new();
    let mut weights = Vec::new();
    let mut weight = |g: &mut Graph, name: &str, want: &[usize]| -> Result<TensorId, LoadError> {
        let (s, dtype) = file(name)?;
        if s != want {
            return Err(LoadError::TensorShape {
                name: name.into(),
                got: s,
                want: want.to_vec(),
            });
        }
        let t = g.weight(name, &s, dtype)?;
        weights.push((name.to_string(), t));
        Ok(t)
    };
    let (d, hd) = (c.d_model, c.head_dim);
    crate::model::llama::check_layers(c, file)?;
    let embd = weight(&mut g, "token_embd.weight", &[c.vocab, d])?;
    let mut blocks = Vec::new();
    for l in 0..c.n_layers {
        let n = |s: &str| format!("blk.{l}.{s}");
        let mut w = HashMap::new();
        for t in Target::ALL {
            let (i, o) = t.dims(c);
            w.insert(t, weight(&mut g, &t.gguf_weight(l), &[o, i])?);
        }
        let bias = if c.qkv_bias {
            let (q, kv) = (c.n_heads * hd, c.n_kv_heads * hd);
            Some([
                weight(&mut g, &n("attn_q.bias"), &[q])?,
                weight(&mut g, &n("attn_k.bias"), &[kv])?,
                weight(&mut g, &n("attn_v.bias"), &[kv])?,
            ])
        } else {
            None
        };
        blocks.push(Block {
            attn_norm: weight(&mut g, &n("attn_norm.weight"), &[d])?,
            w,
            ffn_norm: weight(&mut g, &n("ffn_norm.weight"), &[d])?,
            bias,
        });
    }
    let out_norm = weight(&mut g, "output_norm.weight", &[d])?;
    let head = if c.tied_embeddings {
        embd
    } else {
        weight(&mut g, "output.weight", &[c.vocab, d])?
    };
    let rope_freqs = if c.rope_freqs {
        Some(weight(&mut g, "rope_freqs.weight", &[c.n_rot / 2])?)
    } else {
        None
    };

    // Trainable factors.
    let mut params = Vec::new();
    let mut lora_of: HashMap<(usize, Target), (TensorId, TensorId)> = HashMap::new();
    for l in 0..c.n_layers {
        for &t in &lora.targets {
            let (i, o) = t.dims(c);
            let mut ab = [TensorId(0); 2];
            for (k, (f, sh)) in [
                (Factor::A, vec![lora.rank, i]),
                (Factor::B, vec![o, lora.rank]),
            ]
            .into_iter()
            .enumerate()
            {
                let name = peft_name(l, t, f);
                let n: usize = sh.iter().product();
                let value = g.state(&name, &sh, DType::F32)?;
                let grad = g.state(&format!("{name}.grad"), &sh, DType::F32)?;
                let moments = g.state(&format!("{name}.adam"), &[2, n], DType::F32)?;
                let permuted = f == Factor::B
                    && matches!(t, Target::Q | Target::K)
                    && c.rope_mode == RopeMode::Normal;
                let heads = if t == Target::Q {
                    c.n_heads
                } else {
                    c.n_kv_heads
                };
                params.push(Param {
                    name,
                    layer: l,
                    target: t,
                    factor: f,
                    shape: sh,
                    value,
                    grad,
                    moments,
                    rows: permuted.then(|| hf_to_gguf_rows(heads, hd)),
                });
                ab[k] = value;
            }
            lora_of.insert((l, t), (ab[0], ab[1]));
        }
    }

    let pos = g.sym("pos");
    // Per micro-batch seed of the LoRA dropout masks (STEP only).
    let dropout_seed = g.sym("dropout_seed");
    let rope = Rope {
        mode: c.rope_mode,
        n_rot: c.n_rot,
        base: c.rope_base,
        scaling: c.rope_scaling,
        pos,
        period: shape.seq,
        inverse: false,
    };
    let t = shape.batch * shape.seq;
    let s = lora.scaling();
    let scale_attn = 1.0 / (hd as f32).sqrt();

    // One forward: returns (io without losses, final hidden, per-block node ranges, first block node).
    let forward = |g: &mut Graph, tag: &str, train: bool| -> Result<Forward, LoadError> {
        let ids = g.input(&format!("{tag}.ids"), &[t], DType::U32)?;
        let mut x = g.get_rows(embd, ids)?;
        let first = g.nodes.len();
        let mut ranges = Vec::new();
        for (l, b) in blocks.iter().enumerate() {
            let start = g.nodes.len();
            let proj = |g: &mut Graph,
                        x: TensorId,
                        tg: Target,
                        res: Option<TensorId>|
             -> Result<TensorId, LoadError> {
                let w = b.w[&tg];
                let base = match res {
                    Some(r) => g.matmul_add(x, w, r)?,
                    None => g.matmul(x, w)?,
                };
                let Some(&(a, bb)) = lora_of.get(&(l, tg)) else {
                    return Ok(base);
                };
                // PEFT drops A's input in train mode, a mask per module.
                let x = if train && lora.dropout > 0.0 {
                    let salt = (l * Target::ALL.len() + tg as usize) as u32;
                    g.dropout(x, lora.dropout, salt, dropout_seed)?
                } else {
                    x
                };
                let h = g.matmul(x, a)?;
                let h = g.scale(h, s)?;
                Ok(g.matmul_add(h, bb, base)?)
            };
            let h = g.rms_norm(x, Some(b.attn_norm), c.rms_eps)?;
            let q = proj(g, h, Target::Q, None)?;
            let k = proj(g, h, Target::K, None)?;
            let v = proj(g, h, Target::V, None)?;
            let heads = (c.n_heads, c.n_kv_heads, hd);
            let [q, k, v] = g.qkv_heads([q, k, v], b.bias, None, heads, rope, rope_freqs)?;
            let a = g.causal_attention(q, k, v, shape.seq, scale_attn)?;
            let a = g.reshape(a, &[t, c.n_heads * hd])?;
            x = proj(g, a, Target::O, Some(x))?;
            let h = g.rms_norm(x, Some(b.ffn_norm), c.rms_eps)?;
            let gate = proj(g, h, Target::Gate, None)?;
            let up = proj(g, h, Target::Up, None)?;
            let sw = g.swiglu(gate, up)?;
            x = proj(g, sw, Target::Down, Some(x))?;
            ranges.push(start..g.nodes.len());
        }
        let hf = g.rms_norm(x, Some(out_norm), c.rms_eps)?;
        Ok((ids, hf, ranges, first))
    };
    let chunks: Vec<(usize, usize)> = (0..t)
        .step_by(shape.head_rows)
        .map(|r0| (r0, shape.head_rows.min(t - r0)))
        .collect();

    // STEP: forward, loss head with its gradient, backward, accumulate.
    let loss_scale = g.input("loss_scale", &[1], DType::F32)?;
    let (ids, hf, ranges, first) = forward(&mut g, "step", true)?;
    let end = g.nodes.len();
    let mut labels = Vec::new();
    let mut losses = Vec::new();
    let mut dh: Option<TensorId> = None;
    for (i, &(r0, rows)) in chunks.iter().enumerate() {
        let lab = g.input(&format!("step.labels.{i}"), &[rows], DType::U32)?;
        let hc = if chunks.len() == 1 {
            hf
        } else {
            g.slice_rows(hf, r0, rows)?
        };
        let logits = g.matmul(hc, head)?;
        let loss = g.cross_entropy(logits, lab)?;
        g.mark_output(loss)?;
        let dz = g.cross_entropy_grad(logits, lab, loss_scale)?;
        let dhc = g.matmul_input_grad(dz, head)?;
        dh = Some(match dh {
            None => dhc,
            Some(prev) => g.concat(prev, dhc, 0)?,
        });
        labels.push(lab);
        losses.push(loss);
    }
    let dh = dh.ok_or_else(|| bad("no tokens".into()))?;
    let wrt: Vec<TensorId> = params.iter().map(|p| p.value).collect();
    let ckpt = if shape.recompute { &ranges[..] } else { &[] };
    let grads = super::autodiff::gradients(&mut g, first..end, &[(hf, dh)], &wrt, ckpt)?;
    for (p, dp) in params.iter().zip(grads) {
        g.accumulate(p.grad, dp)?;
    }
    let step = Io {
        ids,
        labels,
        losses,
    };

    // UPDATE: norms, clip, AdamW, zero.
    g.begin_program();
    let hyper = g.input("hyper", &[HYPER_LEN], DType::F32)?;
    let norms = g.state("grad_norms", &[params.len()], DType::F32)?;
    for (i, p) in params.iter().enumerate() {
        g.push(Optim::SqNorm { slot: i }, &[norms, p.grad])?;
    }
    let clip = g.push(
        Optim::Clip {
            max_norm: shape.max_grad_norm,
        },
        &[norms],
    )?;
    g.mark_output(clip)?;
    for p in &params {
        g.push(Optim::Moments, &[p.moments, p.grad, clip, hyper])?;
        g.push(Optim::Param, &[p.value, p.moments, hyper])?;
        g.zero(p.grad)?;
    }

    // EVAL: forward and losses.
    g.begin_program();
    let (eids, ehf, _, _) = forward(&mut g, "eval", false)?;
    let mut elabels = Vec::new();
    let mut elosses = Vec::new();
    for (i, &(r0, rows)) in chunks.iter().enumerate() {
        let lab = g.input(&format!("eval.labels.{i}"), &[rows], DType::U32)?;
        let hc = if chunks.len() == 1 {
            ehf
        } else {
            g.slice_rows(ehf, r0, rows)?
        };
        let logits = g.matmul(hc, head)?;
        let loss = g.cross_entropy(logits, lab)?;
        g.mark_output(loss)?;
        elabels.push(lab);
        elosses.push(loss);
    }
    Ok(TrainGraph {
        config: c.clone(),
        lora: lora.clone(),
        shape: shape.clone(),
        graph: g,
        pos,
        dropout_seed,
        weights,
        params,
        step,
        eval: Io {
            ids: eids,
            labels: elabels,
            losses: elosses,
        },
        loss_scale,
        hyper,
        norms,
        clip,
    })
}

impl TrainGraph {
    /// Rows of each head chunk, in order.
    pub fn chunk_rows(&self) -> Vec<usize> {
        self.step
            .labels
            .iter()
            .map(|l| self.graph.tensors[l.0].shape[0])
            .collect()
    }

    /// The adapter's factors in graph layout (q/k B rows permuted for GGUF
    /// interleaved-RoPE models), per param.
    pub fn to_graph_layout(&self, adapter: &Adapter) -> Result<Vec<Vec<f32>>, LoadError> {
        adapter.check(&self.config)?;
        if adapter.config.rank != self.lora.rank || adapter.config.targets != self.lora.targets {
            return Err(LoadError::Adapter(format!(
                "adapter has rank {} targets {:?}; the training run uses rank {} targets {:?}",
                adapter.config.rank, adapter.config.targets, self.lora.rank, self.lora.targets
            )));
        }
        self.params
            .iter()
            .map(|p| {
                let (_, v) = &adapter.tensors[&p.name];
                Ok(match &p.rows {
                    None => v.clone(),
                    Some(rows) => {
                        let cols = p.shape[1];
                        rows.iter()
                            .flat_map(|&r| v[r * cols..(r + 1) * cols].iter().copied())
                            .collect()
                    }
                })
            })
            .collect()
    }

    /// The inverse of [`TrainGraph::to_graph_layout`] for one param's values.
    pub fn to_peft_layout(&self, p: &Param, v: &[f32]) -> Vec<f32> {
        match &p.rows {
            None => v.to_vec(),
            Some(rows) => {
                let cols = p.shape[1];
                let mut out = vec![0.0; v.len()];
                for (i, &r) in rows.iter().enumerate() {
                    out[r * cols..(r + 1) * cols].copy_from_slice(&v[i * cols..(i + 1) * cols]);
                }
                out
            }
        }
    }
}
