//! The parity cases, one generator per op family, registered in [`registry`].
//!
//! Shapes are awkward on purpose: length 1, odd sizes, sizes that are not
//! multiples of any workgroup (64/256) or tile (32), more rows than the GEMV
//! limit, and weights split across several storage bindings. Inputs are fresh
//! seeded random values (a new seed per run of the suite unless fixed).
//!
//! Tolerances (`|got − want| ≤ atol + rtol·|want|`), all relative to the f64
//! or f32-with-f64-accumulation CPU oracle:
//! * `EXACT_ISH` (add, mul, copies, transpose, concat, cache writes): one f32
//!   rounding at most → rtol 2⁻²³ ≈ 1.2e-7; we allow 1e-6.
//! * `TRANSCENDENTAL` (silu, gelu, swiglu, softmax): WGSL's exp/tanh are
//!   within a few ulp on [−88, 88] (spec: 3 + 2|x| ulp for exp), so rtol 1e-5
//!   for |x| ≤ ~10, plus 1e-6 absolute where results cross zero.
//! * `REDUCTION` (norms, attention): f32 sums over ≤ 1000 terms in a
//!   different order than the f64 oracle: ≲ n·2⁻²⁴ relative ≈ 6e-5 worst
//!   case; we allow rtol 1e-4, atol 1e-5.
//! * `MATMUL`: f32 dot products of length k ≤ 512 with O(1) outputs (weights
//!   scaled by 1/√k): worst case k·2⁻²⁴·Σ|x·w| ≈ 3e-5·√k; we allow atol
//!   2e-4, rtol 1e-4. Quantized weights add nothing: both sides decode the
//!   same bits exactly (f16 scales widen to f32 losslessly).
//! * `ROPE`: θ and the angle are f32 products on both sides; GPU `pow` may
//!   differ by an ulp (angle error ≤ pos·2⁻²³ ≈ 1.2e-4 at pos 1000) and
//!   sin/cos are accurate to ~2⁻²⁰ after range reduction: atol 3e-4.
//! * `HALF` (casts to f16/bf16): one rounding of the target type, whose
//!   rounding mode WGSL leaves open: rtol 2⁻¹⁰ (f16) / 2⁻⁷ (bf16).

mod decode;
mod diffusion;
mod train;

use super::{Case, Tol};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;
use crate::ops::rope::{Llama3Scaling, Rope, RopeMode};
use crate::rng::Rng;

pub const EXACT_ISH: Tol = Tol {
    atol: 1e-6,
    rtol: 1e-6,
};
pub const TRANSCENDENTAL: Tol = Tol {
    atol: 1e-6,
    rtol: 1e-5,
};
pub const REDUCTION: Tol = Tol {
    atol: 1e-5,
    rtol: 1e-4,
};
pub const MATMUL: Tol = Tol {
    atol: 2e-4,
    rtol: 1e-4,
};
pub const ROPE: Tol = Tol {
    atol: 3e-4,
    rtol: 1e-4,
};

/// One line per op family: (name, generator).
pub type Generator = fn(&mut Rng) -> Result<Vec<Case>>;

pub fn registry() -> Vec<(&'static str, Generator)> {
    vec![
        ("unary", unary),
        ("binary", binary),
        ("geglu", geglu),
        ("norm", norm),
        ("softmax", softmax),
        ("argmax", argmax),
        ("mul_mat", mul_mat),
        ("mul_mat_lora", train::mul_mat_lora),
        ("mul_mat_fused", mul_mat_fused),
        ("get_rows", get_rows),
        ("rope", rope),
        ("attention", attention),
        ("write_cache", write_cache),
        ("rope_window", decode::rope_window),
        ("write_cache_window", decode::write_cache_window),
        ("attention_rope_q", decode::attention_rope_q),
        ("attention_new_kv", decode::attention_new_kv),
        ("cast", cast),
        ("transpose", transpose),
        ("concat", concat),
        ("reshape", reshape),
        ("conv2d", diffusion::conv2d),
        ("group_norm", diffusion::group_norm),
        ("resample", diffusion::resample),
        ("spatial_attention", diffusion::spatial_attention),
        ("cross_attention", diffusion::cross_attention),
        ("timestep_embed", diffusion::timestep_embed),
        ("matmul_grads", train::matmul_grads),
        ("norm_glu_back", train::norm_glu_back),
        ("cross_entropy", train::cross_entropy),
        ("causal_attention", train::causal_attention),
        ("optim", train::optim),
        ("slice_rows", train::slice_rows),
        ("dropout", train::dropout),
    ]
}

/// All cases whose "op dtype shape" label contains `filter` (all if empty).
pub fn all_cases(seed: u64, filter: &str) -> Result<Vec<Case>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for (_, generate) in registry() {
        for c in generate(&mut rng)? {
            let label = format!("{} {} {}", c.op, c.dtype, c.shape);
            if filter.is_empty() || label.contains(filter) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Builds one case: a graph plus random data for its inputs.
struct B<'a> {
    g: Graph,
    data: Vec<(TensorId, HostTensor)>,
    rng: &'a mut Rng,
}

impl<'a> B<'a> {
    fn new(rng: &'a mut Rng) -> B<'a> {
        B {
            g: Graph::new(),
            data: Vec::new(),
            rng,
        }
    }

    fn put(&mut self, t: TensorId, shape: &[usize], dtype: DType, v: &[f32]) -> Result<TensorId> {
        self.data.push((t, HostTensor::from_f32(shape, dtype, v)?));
        Ok(t)
    }

    /// A random input with values N(0, scale²), stored as `dtype`.
    fn input(&mut self, shape: &[usize], dtype: DType, scale: f32) -> Result<TensorId> {
        let t = self.g.input("x", shape, dtype)?;
        let v = self.rng.normals(shape.iter().product(), scale);
        self.put(t, shape, dtype, &v)
    }

    fn weight(&mut self, shape: &[usize], dtype: DType, scale: f32) -> Result<TensorId> {
        let t = self.g.weight("w", shape, dtype)?;
        let v = self.rng.normals(shape.iter().product(), scale);
        self.put(t, shape, dtype, &v)
    }

    fn state(&mut self, shape: &[usize], dtype: DType) -> Result<TensorId> {
        let t = self.g.state("cache", shape, dtype)?;
        let v = self.rng.normals(shape.iter().product(), 1.0);
        self.put(t, shape, dtype, &v)
    }

    fn ids(&mut self, ids: &[u32]) -> Result<TensorId> {
        let t = self.g.input("ids", &[ids.len()], DType::U32)?;
        self.data
            .push((t, HostTensor::from_u32(&[ids.len()], ids)?));
        Ok(t)
    }

    fn case(
        mut self,
        op: &'static str,
        dtype: DType,
        shape: String,
        out: TensorId,
        syms: Vec<u32>,
        tol: Tol,
    ) -> Result<Case> {
        self.g.mark_output(out)?;
        Ok(Case {
            op,
            dtype,
            shape,
            graph: self.g,
            data: self.data,
            syms,
            output: out,
            tol,
            binding_limit: None,
        })
    }
}

const ELEMENTWISE_SHAPES: [&[usize]; 5] = [&[1], &[7], &[255], &[257, 3], &[2, 1000]];

fn unary(rng: &mut Rng) -> Result<Vec<Case>> {
    use crate::ops::unary::Unary;
    let mut out = Vec::new();
    for op in [
        Unary::Silu,
        Unary::Gelu,
        Unary::GeluErf,
        Unary::Scale(-0.37),
        Unary::QuickGelu,
        Unary::Relu,
        Unary::Tanh,
    ] {
        for shape in ELEMENTWISE_SHAPES {
            let mut b = B::new(rng);
            let x = b.input(shape, DType::F32, 3.0)?;
            let y = b.g.push(op, &[x])?;
            let tol = if matches!(op, Unary::Scale(_) | Unary::Relu) {
                EXACT_ISH
            } else {
                TRANSCENDENTAL
            };
            out.push(b.case(
                crate::ops::Op::name(&op),
                DType::F32,
                format!("{shape:?}"),
                y,
                vec![],
                tol,
            )?);
        }
    }
    Ok(out)
}

fn binary(rng: &mut Rng) -> Result<Vec<Case>> {
    use crate::ops::binary::Binary;
    let mut out = Vec::new();
    for op in [Binary::Add, Binary::Mul, Binary::SwiGlu] {
        let mut shapes: Vec<(Vec<usize>, Vec<usize>)> = ELEMENTWISE_SHAPES
            .iter()
            .map(|s| (s.to_vec(), s.to_vec()))
            .collect();
        if op != Binary::SwiGlu {
            shapes.push((vec![257, 3], vec![3]));
            shapes.push((vec![4, 5, 33], vec![5, 33]));
            // NHWC broadcasts: per sample and channel, per sample, per row.
            shapes.push((vec![2, 3, 5, 7], vec![2, 1, 1, 7]));
            shapes.push((vec![3, 4, 5, 6], vec![3, 1, 1, 1]));
            shapes.push((vec![7, 5], vec![7, 1]));
        }
        for (sa, sb) in shapes {
            let mut b = B::new(rng);
            let x = b.input(&sa, DType::F32, 2.0)?;
            let y = b.input(&sb, DType::F32, 2.0)?;
            let z = b.g.push(op, &[x, y])?;
            let tol = if op == Binary::SwiGlu {
                TRANSCENDENTAL
            } else {
                EXACT_ISH
            };
            out.push(b.case(
                crate::ops::Op::name(&op),
                DType::F32,
                format!("{sa:?}·{sb:?}"),
                z,
                vec![],
                tol,
            )?);
        }
    }
    Ok(out)
}

fn geglu(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // Packed [.., 2n] projections: odd n, n not a multiple of 256, rank 3.
    // The kernels' erf (common/erf.wgsl) is within 1.5e-7 absolute, scaled
    // by |a·g|/2 in the product: ≤ 4e-6 for |a|, |g| ≤ 7 (4.5σ of the
    // N(0, 1.5²) inputs).
    let tol = Tol {
        atol: 5e-6,
        rtol: 1e-5,
    };
    for shape in [&[2][..], &[1, 14], &[5, 2 * 129], &[2, 7, 2 * 640]] {
        let mut b = B::new(rng);
        let x = b.input(shape, DType::F32, 1.5)?;
        let y = b.g.geglu(x)?;
        out.push(b.case("geglu", DType::F32, format!("{shape:?}"), y, vec![], tol)?);
    }
    Ok(out)
}

fn norm(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // The last spans several of the fast CPU kernel's tasks.
    for (rows, d) in [(1, 1), (3, 7), (2, 576), (5, 1000), (1, 257), (40, 576)] {
        for variant in 0..4 {
            let mut b = B::new(rng);
            let x = b.input(&[rows, d], DType::F32, 1.5)?;
            let w = b.weight(&[d], DType::F32, 1.0)?;
            let (op, y) = match variant {
                0 => ("rms_norm", b.g.rms_norm(x, Some(w), 1e-5)?),
                1 => ("rms_norm", b.g.rms_norm(x, None, 1e-6)?),
                2 => {
                    let bias = b.weight(&[d], DType::F32, 1.0)?;
                    ("layer_norm", b.g.layer_norm(x, Some(w), Some(bias), 1e-5)?)
                }
                _ => ("layer_norm", b.g.layer_norm(x, None, None, 1e-5)?),
            };
            let desc = format!("[{rows}, {d}]{}", ["·w", "", "·w+b", ""][variant]);
            out.push(b.case(op, DType::F32, desc, y, vec![], REDUCTION)?);
        }
    }
    Ok(out)
}

fn softmax(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (shape, scale) in [
        (vec![1, 1], 1.0),
        (vec![3, 7], 1.0),
        (vec![2, 257], 0.125),
        (vec![1, 1000], 2.0),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&shape, DType::F32, 3.0)?;
        let y = b.g.softmax(x, scale)?;
        out.push(b.case(
            "softmax",
            DType::F32,
            format!("{shape:?}×{scale}"),
            y,
            vec![],
            TRANSCENDENTAL,
        )?);
    }
    Ok(out)
}

fn argmax(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // Rows of 16384+ split over workgroups on GPUs (Argmax::splits): a
    // vocabulary-sized row, a row whose last chunk is short, several rows.
    for shape in [
        vec![1],
        vec![3, 7],
        vec![2, 300],
        vec![1, 49152],
        vec![1, 262_144],
        vec![1, 16_385],
        vec![3, 20_000],
    ] {
        let mut b = B::new(rng);
        let x = b.input(&shape, DType::F32, 1.0)?;
        let y = b.g.argmax(x)?;
        out.push(b.case(
            "argmax",
            DType::F32,
            format!("{shape:?}"),
            y,
            vec![],
            EXACT_ISH,
        )?);
    }
    // Ties resolve to the first index, as PyTorch and llama.cpp do.
    let mut b = B::new(rng);
    let x = b.g.input("x", &[2, 600], DType::F32)?;
    let mut v = vec![0.5f32; 1200];
    v[517] = 2.0;
    v[599] = 2.0;
    v[600 + 3] = -1.0;
    b.put(x, &[2, 600], DType::F32, &v)?;
    let y = b.g.argmax(x)?;
    out.push(b.case(
        "argmax",
        DType::F32,
        "[2, 600] ties".into(),
        y,
        vec![],
        EXACT_ISH,
    )?);
    // Ties across split chunks: the lower index wins in the combine pass,
    // whichever chunk finishes first; a row of -inf and NaN only.
    let mut b = B::new(rng);
    let x = b.g.input("x", &[2, 40_000], DType::F32)?;
    let mut v = vec![0.25f32; 80_000];
    for i in [39_999, 4_097, 30_000] {
        v[i] = 3.0;
    }
    for t in v[40_000..].iter_mut() {
        *t = f32::NEG_INFINITY;
    }
    v[40_000 + 20_000] = f32::NAN;
    b.put(x, &[2, 40_000], DType::F32, &v)?;
    let y = b.g.argmax(x)?;
    out.push(b.case(
        "argmax",
        DType::F32,
        "[2, 40000] ties across chunks, -inf/NaN row".into(),
        y,
        vec![],
        EXACT_ISH,
    )?);
    Ok(out)
}

/// (m, n, k) per block size; every weight dtype gets its block size's list.
fn matmul_shapes(block: usize) -> Vec<(usize, usize, usize)> {
    match block {
        1 => vec![
            (1, 1, 1),
            (1, 7, 5),
            (3, 33, 17),
            (8, 64, 64),
            (9, 31, 35),
            (33, 65, 100),
            (1, 300, 64),
            // ≥ 128 tiles of 64×64: the large tile on GPUs.
            (200, 2600, 40),
        ],
        32 => vec![
            (1, 1, 32),
            (1, 7, 96),
            (2, 33, 160),
            (8, 65, 64),
            (9, 17, 96),
            (40, 70, 128),
            (130, 4100, 64),
            // 128×64 tiles of the big GEMM (rows a multiple of 64).
            (300, 4096, 64),
        ],
        _ => vec![
            (1, 1, 256),
            (1, 17, 512),
            (3, 5, 256),
            (9, 33, 256),
            (40, 64, 512),
            (129, 4100, 256),
        ],
    }
}

fn mul_mat(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for dtype in DType::WEIGHTS {
        let mut shapes: Vec<(usize, usize, usize, bool)> = matmul_shapes(dtype.block_size())
            .into_iter()
            .map(|(m, n, k)| (m, n, k, false))
            .collect();
        shapes.push((1, 200, 256, true));
        shapes.push((12, 200, 256, true));
        shapes.push((70, 200, 256, true));
        if matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q8_0) {
            // Decode rows of 72 and 130 blocks (whole 2048-wide slices
            // and a short rest; row bytes a multiple of 16, and for
            // Q4_0/Q8_0 of 4 only), row counts that leave a warp's or a
            // workgroup's last rows partial.
            shapes.push((1, 13, 2304, false));
            shapes.push((1, 22, 4160, false));
            // A prefill product over a long K on a small grid (the
            // tensor-core GEMM's split-K; its last slice partial).
            shapes.push((140, 72, 2080, false));
        }
        for (m, n, k, split) in shapes {
            let mut b = B::new(rng);
            let x = b.input(&[m, k], DType::F32, 1.0)?;
            let w = b.weight(&[n, k], dtype, 1.0 / (k as f32).sqrt())?;
            // Every other shape adds a residual in the epilogue.
            let with_res = (m + n) % 2 == 1 || split;
            let y = if with_res {
                let r = b.input(&[m, n], DType::F32, 1.0)?;
                b.g.matmul_add(x, w, r)?
            } else {
                b.g.matmul(x, w)?
            };
            let desc = format!(
                "m{m} n{n} k{k}{}{}",
                if with_res { " +res" } else { "" },
                if split { " split" } else { "" }
            );
            let mut c = b.case("mul_mat", dtype, desc, y, vec![], MATMUL)?;
            if split {
                // Activations must fit one binding; the weight spans several
                // (at least 7 rows per chunk, the last chunk short).
                let act = 4 * m * k.max(n);
                c.binding_limit = Some(act.max(7 * dtype.row_bytes(k)?) as u64);
            }
            out.push(c);
        }
    }
    Ok(out)
}

fn get_rows(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for dtype in DType::WEIGHTS {
        let d = if dtype.block_size() == 1 {
            7
        } else {
            dtype.block_size() * 2
        };
        for (v, ids, split) in [
            (1usize, vec![0u32], false),
            (13, vec![12, 0, 5, 5, 12], false),
            (
                100,
                (0..37).map(|i| (i * 11 % 100) as u32).collect::<Vec<_>>(),
                false,
            ),
            (100, vec![99, 0, 31, 32, 64, 98, 3], true),
        ] {
            let mut b = B::new(rng);
            let table = b.weight(&[v, d], dtype, 1.0)?;
            let idt = b.ids(&ids)?;
            let y = b.g.get_rows(table, idt)?;
            let desc = format!(
                "[{v}, {d}] × {} ids{}",
                ids.len(),
                if split { " split" } else { "" }
            );
            let mut c = b.case("get_rows", dtype, desc, y, vec![], EXACT_ISH)?;
            if split {
                let act = 4 * ids.len() * d;
                c.binding_limit = Some(act.max(16 * dtype.row_bytes(d)?) as u64);
            }
            out.push(c);
        }
    }
    Ok(out)
}

fn rope(rng: &mut Rng) -> Result<Vec<Case>> {
    let llama3 = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_context: 64,
    };
    let mut out = Vec::new();
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        for (t, h, d, n_rot, pos, base, scaling) in [
            (1, 1, 2, 2, 0u32, 10000.0, None),
            (5, 3, 64, 64, 7, 10000.0, None),
            (4, 2, 128, 64, 1000, 500000.0, None),
            (3, 9, 64, 64, 100, 100000.0, None),
            (6, 2, 64, 64, 300, 500000.0, Some(llama3)),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let x = b.input(&[t, h, d], DType::F32, 1.0)?;
            let y = b.g.rope(
                x,
                Rope {
                    mode,
                    n_rot,
                    base,
                    scaling,
                    pos: p,
                    period: 0,
                    inverse: false,
                },
            )?;
            let desc = format!(
                "{mode:?} [{t}, {h}, {d}] rot{n_rot} pos{pos}{}",
                if scaling.is_some() { " llama3" } else { "" }
            );
            out.push(b.case("rope", DType::F32, desc, y, vec![pos], ROPE)?);
        }
        // Per-frequency divisors (llama.cpp's rope_freqs), in [1, 8].
        let mut b = B::new(rng);
        let p = b.g.sym("pos");
        let x = b.input(&[3, 4, 64], DType::F32, 1.0)?;
        let fac = b.g.weight("rope_freqs", &[32], DType::F32)?;
        let v: Vec<f32> = (0..32).map(|i| 1.0 + 7.0 * (i as f32 / 31.0)).collect();
        b.put(fac, &[32], DType::F32, &v)?;
        let rope = Rope {
            mode,
            n_rot: 64,
            base: 500000.0,
            scaling: None,
            pos: p,
            period: 0,
            inverse: false,
        };
        let y = b.g.rope_with_factors(x, fac, rope)?;
        let desc = format!("{mode:?} [3, 4, 64] factors pos77");
        out.push(b.case("rope", DType::F32, desc, y, vec![77], ROPE)?);
        // Training: batches of sequences (period), and the inverse rotation
        // (RoPE's gradient).
        for (t, period, inverse) in [(10, 5, false), (9, 3, true), (7, 0, true)] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let x = b.input(&[t, 3, 16], DType::F32, 1.0)?;
            let rope = Rope {
                mode,
                n_rot: 16,
                base: 10000.0,
                scaling: None,
                pos: p,
                period,
                inverse,
            };
            let y = b.g.rope(x, rope)?;
            let desc = format!("{mode:?} [{t}, 3, 16] period{period} inverse{inverse}");
            out.push(b.case("rope", DType::F32, desc, y, vec![0], ROPE)?);
        }
    }
    Ok(out)
}

fn attention(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for kv in [DType::F32, DType::F16] {
        // (t, hq, hkv, d, cap, pos, window): decode (t ≤ 4: split-KV
        // kernels) and rows; window 0 attends to every earlier key.
        for (t, hq, hkv, d, cap, pos, win) in [
            (1, 1, 1, 2, 1, 0u32, 0),
            (1, 9, 3, 64, 100, 57, 0),
            (1, 4, 1, 128, 300, 299, 0),
            (3, 2, 2, 32, 17, 5, 0),
            (4, 6, 3, 64, 8, 4, 0),
            (7, 6, 2, 64, 40, 10, 0),
            (20, 3, 3, 80, 33, 13, 0),
            (9, 2, 1, 256, 200, 120, 0),
            // Caches past ONE_MAX_CAP: the split-KV pair on GPUs too.
            (1, 2, 1, 64, 2100, 2099, 0),
            (2, 4, 2, 32, 2049, 1500, 0),
            // Prefill rows over several 256-key blocks (attn_one on GPUs).
            (6, 4, 2, 64, 700, 600, 0),
            (5, 2, 1, 128, 600, 513, 0),
            // Prefill tiles of 16 tokens (attn_tile on GPUs, d ≤ 64): a
            // partial last tile, an empty cache, d 32 and 4, blocks of 32
            // keys past the cache's end.
            (40, 4, 2, 64, 700, 600, 0),
            (37, 4, 1, 64, 300, 0, 0),
            (33, 6, 3, 32, 80, 10, 0),
            (17, 2, 2, 4, 40, 7, 0),
            // Several 64-token tiles (attn_coop on tensor cores), one partial.
            (130, 4, 2, 64, 300, 20, 0),
            // Sliding windows: shorter than the keys (the first queries of a
            // chunk see fewer), one key, wider than the keys (no effect), a
            // window across several 256-key blocks and split-KV splits.
            (1, 4, 2, 64, 100, 57, 16),
            (7, 6, 2, 64, 40, 10, 5),
            (3, 2, 1, 32, 17, 9, 1),
            (4, 2, 2, 32, 20, 3, 64),
            (6, 4, 2, 64, 700, 600, 513),
            (1, 2, 1, 64, 2100, 2099, 700),
            (2, 4, 2, 256, 2049, 1500, 3),
            (40, 4, 2, 64, 700, 600, 23),
            (21, 2, 2, 32, 60, 30, 1),
            (100, 2, 1, 64, 200, 50, 37),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let q = b.input(&[t, hq, d], DType::F32, 1.0)?;
            let k = b.state(&[hkv, cap, d], kv)?;
            let v = b.state(&[hkv, cap, d], kv)?;
            let y =
                b.g.attention_window(q, k, v, 1.0 / (d as f32).sqrt(), p, win)?;
            let desc = format!("t{t} hq{hq} hkv{hkv} d{d} cap{cap} pos{pos} window{win}");
            out.push(b.case("attention", kv, desc, y, vec![pos], REDUCTION)?);
        }
    }
    Ok(out)
}

fn write_cache(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for kv in [DType::F32, DType::F16] {
        for (t, hkv, d, cap, pos) in [
            (1, 1, 2, 1, 0u32),
            (1, 3, 64, 50, 49),
            (5, 2, 6, 9, 3),
            (7, 3, 64, 20, 0),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let cache = b.state(&[hkv, cap, d], kv)?;
            let src = b.input(&[t, hkv, d], DType::F32, 1.0)?;
            let y = b.g.write_cache(cache, src, p)?;
            let desc = format!("src[{t}, {hkv}, {d}] cache cap{cap} pos{pos}");
            out.push(b.case("write_cache", kv, desc, y, vec![pos], EXACT_ISH)?);
        }
    }
    Ok(out)
}

fn cast(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (from, to) in [
        (DType::F32, DType::F32),
        (DType::F32, DType::F16),
        (DType::F32, DType::BF16),
        (DType::F16, DType::F32),
        (DType::BF16, DType::F32),
    ] {
        for shape in [vec![1], vec![7], vec![3, 1001]] {
            let mut b = B::new(rng);
            let x = b.input(&shape, from, 4.0)?;
            let y = b.g.cast(x, to)?;
            let tol = match to {
                DType::F16 => Tol {
                    atol: 1e-7,
                    rtol: 1.0 / 1024.0,
                },
                DType::BF16 => Tol {
                    atol: 1e-7,
                    rtol: 1.0 / 128.0,
                },
                _ => EXACT_ISH,
            };
            out.push(b.case("cast", to, format!("{from}→{to} {shape:?}"), y, vec![], tol)?);
        }
    }
    Ok(out)
}

fn transpose(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for shape in [vec![1, 1], vec![3, 5], vec![2, 7, 33], vec![64, 65]] {
        let mut b = B::new(rng);
        let x = b.input(&shape, DType::F32, 1.0)?;
        let y = b.g.transpose(x)?;
        out.push(b.case(
            "transpose",
            DType::F32,
            format!("{shape:?}"),
            y,
            vec![],
            EXACT_ISH,
        )?);
    }
    Ok(out)
}

fn concat(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (sa, sb, axis) in [
        (vec![1], vec![1], 0),
        (vec![3, 5], vec![2, 5], 0),
        (vec![3, 5], vec![3, 1], 1),
        (vec![2, 7, 3], vec![2, 4, 3], 1),
        (vec![2, 3, 33], vec![2, 3, 31], 2),
        // NHWC channel concat (a UNet's skip): rows of 8 and 12, 4 at a time.
        (vec![2, 5, 3, 8], vec![2, 5, 3, 12], 3),
        // Rows of 8 at an odd destination offset.
        (vec![2, 3, 5], vec![2, 3, 8], 2),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&sa, DType::F32, 1.0)?;
        let y = b.input(&sb, DType::F32, 1.0)?;
        let z = b.g.concat(x, y, axis)?;
        out.push(b.case(
            "concat",
            DType::F32,
            format!("{sa:?}+{sb:?} axis{axis}"),
            z,
            vec![],
            EXACT_ISH,
        )?);
    }
    Ok(out)
}

/// A view feeding a kernel and a view as the output (aliasing, no copy).
fn reshape(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (sa, sb) in [
        (vec![1], vec![1, 1]),
        (vec![6, 4], vec![4, 6]),
        (vec![3, 5, 7], vec![105]),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&sa, DType::F32, 1.0)?;
        let y = b.g.scale(x, 2.0)?;
        let v = b.g.reshape(y, &sb)?;
        let z = b.g.add(v, v)?;
        let w = b.g.reshape(z, &sa)?;
        out.push(b.case(
            "reshape",
            DType::F32,
            format!("{sa:?}→{sb:?}"),
            w,
            vec![],
            EXACT_ISH,
        )?);
    }
    Ok(out)
}

/// Fused matmuls: RMSNorm prologue, SwiGLU over the two weight halves, a
/// residual — on the decode GEMV (m ≤ 8) and the prefill chain (m > 8).
fn mul_mat_fused(rng: &mut Rng) -> Result<Vec<Case>> {
    use crate::ops::matmul_fused::Fusion;
    let mut out = Vec::new();
    for dtype in [
        DType::F32,
        DType::F16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q4_K,
        DType::Q5_K,
    ] {
        let k = if dtype.block_size() == 256 { 256 } else { 96 };
        for (i, m) in [1usize, 3, 8, 12, 40].into_iter().enumerate() {
            for (norm, glu, res) in [
                (true, false, false),
                (true, true, false),
                (false, true, true),
                (true, true, true),
            ] {
                let n = 7 + 10 * i;
                let mut b = B::new(rng);
                let x = b.input(&[m, k], DType::F32, 1.5)?;
                let w = b.weight(
                    &[if glu { 2 * n } else { n }, k],
                    dtype,
                    1.0 / (k as f32).sqrt(),
                )?;
                let nw = if norm {
                    Some((b.weight(&[k], DType::F32, 1.0)?, 1e-5))
                } else {
                    None
                };
                let residual = if res {
                    Some(b.input(&[m, n], DType::F32, 1.0)?)
                } else {
                    None
                };
                let y = b.g.matmul_fused(
                    x,
                    w,
                    Fusion {
                        norm: nw,
                        glu,
                        residual,
                    },
                )?;
                let desc = format!(
                    "m{m} n{n} k{k}{}{}{}",
                    if norm { " norm" } else { "" },
                    if glu { " glu" } else { "" },
                    if res { " +res" } else { "" }
                );
                out.push(b.case("mul_mat_fused", dtype, desc, y, vec![], MATMUL)?);
            }
        }
    }
    // Prefill chunks large enough for the GPUs' big GEMM: 256×32 tiles with
    // norm, GLU and residual; 128×64 tiles with norm and residual; a long
    // row (the tensor-core GEMM's RMSNorm-in-conversion over many slices).
    for (m, n, k, glu) in [
        (130, 2050, 64, true),
        (300, 4096, 64, false),
        (140, 72, 2080, true),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&[m, k], DType::F32, 1.5)?;
        let w = b.weight(&[if glu { 2 * n } else { n }, k], DType::Q4_0, 0.125)?;
        let nw = b.weight(&[k], DType::F32, 1.0)?;
        let residual = Some(b.input(&[m, n], DType::F32, 1.0)?);
        let y = b.g.matmul_fused(
            x,
            w,
            Fusion {
                norm: Some((nw, 1e-5)),
                glu,
                residual,
            },
        )?;
        let desc = format!("m{m} n{n} k{k} norm{} +res", if glu { " glu" } else { "" });
        out.push(b.case("mul_mat_fused", DType::Q4_0, desc, y, vec![], MATMUL)?);
    }
    // Decode rows wider than 1024 (the 16 KiB workgroup copy of x on GPUs
    // with subgroups): f32 with a partial last 32-block, and the formats of
    // the CUDA twin's wide-load decode path (68 half-blocks a row: lanes
    // wrap around).
    // k 2304 / 4160: rows of several 2048-wide slices (as mul_mat's
    // decode cases).
    for (dtype, k) in [
        (DType::F32, 1100),
        (DType::Q8_0, 1088),
        (DType::Q4_0, 1088),
        (DType::Q4_1, 1088),
        (DType::Q8_0, 2304),
        (DType::Q4_0, 2304),
        (DType::Q4_1, 4160),
        (DType::Q4_0, 4160),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&[1, k], DType::F32, 1.5)?;
        let w = b.weight(&[2 * 9, k], dtype, 1.0 / (k as f32).sqrt())?;
        let nw = b.weight(&[k], DType::F32, 1.0)?;
        let y = b.g.matmul_fused(
            x,
            w,
            Fusion {
                norm: Some((nw, 1e-5)),
                glu: true,
                residual: None,
            },
        )?;
        let desc = format!("m1 n9 k{k} norm glu");
        out.push(b.case("mul_mat_fused", dtype, desc, y, vec![], MATMUL)?);
    }
    Ok(out)
}
