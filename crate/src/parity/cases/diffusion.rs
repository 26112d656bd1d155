//! Parity cases of the diffusion ops (registered in [`super::registry`]):
//! conv2d, group norm, 2× resampling, spatial attention and the timestep
//! embedding, at awkward shapes (odd sizes, M and Cout off the 32-tile,
//! Cin = 1, stride 2, 1×1, weights split across bindings).
//!
//! Tolerances reuse the families of [`super`]: conv2d is a GEMM with
//! k = kh·kw·Cin ≤ 576 and weights scaled by 1/√k (`MATMUL`); group norm and
//! attention reduce over ≤ 4096 values (`REDUCTION`: f32 sums of that length
//! in tree order stay within ~1e-5 relative of f64 for O(1) outputs); the
//! timestep embedding's angles are f32 products up to |t| ~ 1000 (`ROPE`).

use super::{B, EXACT_ISH, MATMUL, REDUCTION, ROPE};
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::conv2d::Conv2d;
use crate::ops::group_norm::GroupNorm;
use crate::ops::spatial_attention::SpatialAttention;
use crate::ops::timestep::TimestepEmbed;
use crate::parity::Case;
use crate::rng::Rng;

pub(super) fn conv2d(rng: &mut Rng) -> Result<Vec<Case>> {
    // (batch, h, w, cin, cout, k, stride, pad, residual, dtype, split)
    type Shape = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        bool,
        DType,
        bool,
    );
    let f = DType::F32;
    let shapes: [Shape; 23] = [
        (1, 5, 7, 3, 5, 3, 1, 1, false, f, false),
        // ≥ 128 tiles of 64×64 (pixels × Cout): the 64-tile on GPUs (Cin
        // 18 is not a multiple of 4, so not the big kernel).
        (2, 32, 32, 18, 256, 3, 1, 1, true, f, false),
        (2, 32, 32, 64, 256, 1, 1, 0, false, DType::Q8_0, false),
        (2, 9, 6, 4, 33, 3, 2, 1, true, f, false),
        (1, 8, 8, 1, 32, 3, 1, 1, false, f, false),
        (2, 4, 4, 16, 8, 1, 1, 0, true, f, false),
        (1, 17, 13, 8, 40, 3, 1, 1, true, f, false),
        (1, 6, 6, 3, 4, 2, 2, 0, false, f, false),
        (1, 3, 4, 2, 3, 3, 1, 0, false, f, false),
        (2, 6, 5, 32, 35, 3, 1, 1, true, DType::F16, false),
        (1, 7, 9, 32, 24, 3, 2, 1, false, DType::BF16, false),
        (2, 6, 5, 32, 35, 3, 1, 1, true, DType::Q8_0, false),
        (1, 5, 4, 64, 48, 1, 1, 0, false, DType::Q8_0, false),
        (1, 6, 5, 32, 70, 3, 1, 1, false, DType::Q8_0, true),
        (2, 32, 32, 32, 64, 3, 1, 1, true, f, false),
        // ≥ 128 tiles of the `big` kernel (Cin % 4 == 0): 256 pixels × 32
        // channels (Cout 40: a partial second tile; k = 108: a partial last
        // K slice), and 128 × 64 (F16, k = 36; Q8_0 1×1, two channel tiles).
        (1, 131, 129, 12, 40, 3, 1, 1, true, f, false),
        (1, 128, 128, 4, 64, 3, 1, 1, false, DType::F16, false),
        (1, 128, 130, 32, 128, 1, 1, 0, true, DType::Q8_0, false),
        // 128 × 32 tiles of 128 invocations (too few 256-pixel tiles).
        (1, 128, 130, 8, 24, 3, 1, 1, true, f, false),
        // Split K (too few tiles even of 128 pixels, K ≥ 512): 128 × 64 in
        // 2 slabs (k = 576, 288 each); 128 × 32 in 9 slabs of 256 (k =
        // 2304, the last slab short of nothing) with a residual; stride 2
        // with a K that leaves a short last slab (k = 1224); Q8_0 weights in
        // row chunks (each chunk its own slabs and sum).
        (1, 8, 8, 64, 128, 3, 1, 1, false, f, false),
        (2, 4, 4, 256, 96, 3, 1, 1, true, f, false),
        (1, 9, 11, 136, 40, 3, 2, 1, true, DType::F16, false),
        (1, 6, 6, 96, 70, 3, 1, 1, true, DType::Q8_0, true),
    ];
    // One more zero row and column after the image (the VAE encoder's
    // downsamplers: F.pad(x, (0, 1, 0, 1)), then an unpadded stride-2 conv);
    // the second makes 128 tiles of 128 × 64 (the big kernel on GPUs).
    let asymmetric = [
        (1, 9, 7, 8, 12, 3, 2, 0, true, f, false),
        (1, 256, 256, 8, 64, 3, 2, 0, false, f, false),
    ];
    let all = shapes
        .into_iter()
        .map(|s| (s, 0))
        .chain(asymmetric.into_iter().map(|s| (s, 1)));
    let mut out = Vec::new();
    for ((batch, h, w, cin, cout, k, stride, pad, with_res, dtype, split), pad_extra) in all {
        let op = Conv2d {
            kh: k,
            kw: k,
            stride,
            pad,
            pad_extra,
        };
        let mut b = B::new(rng);
        let x = b.input(&[batch, h, w, cin], DType::F32, 1.0)?;
        let kk = k * k * cin;
        let wt = b.weight(&[cout, kk], dtype, 1.0 / (kk as f32).sqrt())?;
        let bias = b.input(&[cout], DType::F32, 0.5)?;
        let res = if with_res {
            let (oh, ow) = op.out_hw(h, w).unwrap_or((1, 1));
            Some(b.input(&[batch, oh, ow, cout], DType::F32, 1.0)?)
        } else {
            None
        };
        let y = b.g.conv2d(x, wt, bias, res, op)?;
        let desc = format!(
            "[{batch},{h},{w},{cin}]→{cout} {k}×{k} s{stride} p{pad}{}{}{}",
            if pad_extra > 0 { "+1" } else { "" },
            if with_res { " +res" } else { "" },
            if split { " split" } else { "" }
        );
        let mut c = b.case("conv2d", dtype, desc, y, vec![], MATMUL)?;
        if split {
            // Activations fit one binding; the weight spans several.
            let act = 4 * batch * h * w * cin.max(cout);
            c.binding_limit = Some(act.max(9 * dtype.row_bytes(kk)?) as u64);
        }
        out.push(c);
    }
    Ok(out)
}

pub(super) fn group_norm(rng: &mut Rng) -> Result<Vec<Case>> {
    // (shape, groups, silu, scale-shift)
    let shapes: [(&[usize], usize, bool, bool); 14] = [
        // Groups of ≥ 4 values: a 2-value group normalises x0 − mean =
        // (x0 − x1)/2, whose f32 rounding is relative to |x0 − x1| — an
        // ill-conditioned case that failed the tolerance about once in a
        // thousand seeds without any kernel error.
        (&[1, 1, 1, 8], 2, false, false),
        (&[2, 5, 7, 12], 3, true, true),
        (&[1, 16, 16, 32], 32, false, false),
        (&[2, 9, 9, 64], 32, true, true),
        (&[1, 3, 3, 6], 1, true, false),
        (&[2, 10, 8], 4, false, true),
        (&[1, 64, 64, 32], 8, true, false),
        (&[2, 32, 32, 64], 32, true, true),
        // CPU adapters: the largest group of the barrier-free kernel (8,192).
        (&[1, 64, 64, 32], 16, true, true),
        // GPUs: groups of ≤ 1024 values (all above) in one dispatch; larger
        // ones in chunks of pixels (the last one short); C = 320 takes two
        // rounds of 256 channels, C = 96 leaves invocations idle.
        (&[2, 50, 50, 16], 4, true, true),
        (&[1, 9, 7, 320], 32, true, true),
        (&[1, 40, 30, 320], 32, true, true),
        (&[2, 40, 40, 96], 32, true, false),
        // A VAE-like norm: 120 chunks × 4 channels per group, more (chunk,
        // channel) items than `finish` has invocations.
        (&[1, 96, 80, 128], 32, true, false),
    ];
    let mut out = Vec::new();
    for (shape, groups, silu, ss) in shapes {
        out.push(group_norm_case(rng, shape, groups, silu, ss, 1.0)?);
    }
    // Terrain-like magnitudes (its activations reach ±1e9): γ of ±150 puts
    // many SiLU inputs below −64, where the fast CPU kernel returns 0 (under
    // 1e-26 exactly), not the subnormal-prone y / exp(88).
    out.push(group_norm_case(rng, &[1, 8, 8, 32], 8, true, true, 150.0)?);
    Ok(out)
}

fn group_norm_case(
    rng: &mut Rng,
    shape: &[usize],
    groups: usize,
    silu: bool,
    ss: bool,
    gamma_scale: f32,
) -> Result<Case> {
    let c = shape[shape.len() - 1];
    let mut b = B::new(rng);
    // An offset mean, as activations have: the two-pass variance keeps it exact.
    let x = b.input(shape, DType::F32, 2.0)?;
    let gamma = b.input(&[c], DType::F32, gamma_scale)?;
    let beta = b.input(&[c], DType::F32, 1.0)?;
    let scale_shift = if ss {
        Some(b.input(&[shape[0], 2 * c], DType::F32, 0.5)?)
    } else {
        None
    };
    let op = GroupNorm {
        groups,
        eps: 1e-5,
        silu,
    };
    let y = b.g.group_norm(x, gamma, beta, scale_shift, op)?;
    let desc = format!(
        "{shape:?} g{groups}{}{}{}",
        if silu { " silu" } else { "" },
        if ss { " +scale-shift" } else { "" },
        if gamma_scale > 1.0 {
            format!(" γ×{gamma_scale}")
        } else {
            String::new()
        }
    );
    b.case("group_norm", DType::F32, desc, y, vec![], REDUCTION)
}

pub(super) fn resample(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (pool, shape) in [
        (true, [1, 4, 6, 3]),
        (true, [2, 7, 5, 33]),
        (true, [1, 2, 2, 1]),
        (false, [1, 1, 1, 1]),
        (false, [2, 3, 5, 7]),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&shape, DType::F32, 1.0)?;
        let (name, y) = if pool {
            ("avg_pool_2x2", b.g.avg_pool_2x2(x)?)
        } else {
            ("upsample_nearest_2x", b.g.upsample_nearest_2x(x)?)
        };
        out.push(b.case(name, DType::F32, format!("{shape:?}"), y, vec![], EXACT_ISH)?);
    }
    Ok(out)
}

pub(super) fn spatial_attention(rng: &mut Rng) -> Result<Vec<Case>> {
    // (batch, tokens, heads, head dim, legacy layout)
    let shapes = [
        (1, 1, 1, 4, true),
        (2, 17, 2, 8, false),
        (1, 70, 3, 32, true),
        (2, 64, 1, 64, false),
        (1, 33, 2, 100, true),
        (1, 257, 4, 24, true),
        // The terrain UNet's largest: 32×32 tokens, 2 heads of 32.
        (2, 1024, 2, 32, false),
        (1, 1025, 1, 64, true),
        // ≥ 128 workgroups of 64 queries: the flash kernel on GPUs (d ≤ 32,
        // then the D64 build; partial query blocks and key tiles, d below
        // the build's width).
        (8, 520, 2, 20, true),
        (3, 300, 9, 44, true),
        (16, 130, 4, 64, false),
        // Heads of 2 over several key blocks (tiny SD configs: 8 heads over
        // 16 channels; the CPU backend's dot-product P·V).
        (2, 600, 8, 2, false),
    ];
    let mut out = Vec::new();
    for (batch, t, heads, d, legacy) in shapes {
        let mut b = B::new(rng);
        let qkv = b.input(&[batch, t, 3 * heads * d], DType::F32, 1.0)?;
        let y =
            b.g.spatial_attention(qkv, SpatialAttention { heads, legacy })?;
        let desc = format!(
            "b{batch} t{t} h{heads} d{d}{}",
            if legacy { " legacy" } else { "" }
        );
        out.push(b.case("spatial_attention", DType::F32, desc, y, vec![], REDUCTION)?);
    }
    Ok(out)
}

pub(super) fn cross_attention(rng: &mut Rng) -> Result<Vec<Case>> {
    // (batch, queries, keys, heads, head dim): one key; SD's 77 text tokens
    // over a few hundred image tokens; d past one 32-wide chunk and odd; SD
    // 1.5's deepest heads (d 160 = MAX_HEAD_DIM).
    let shapes = [
        (1, 1, 1, 1, 4),
        (2, 17, 5, 2, 8),
        (2, 64, 77, 8, 40),
        (1, 300, 77, 5, 64),
        (3, 65, 9, 3, 33),
        (1, 70, 1200, 1, 128),
        (2, 16, 77, 8, 160),
    ];
    let mut out = Vec::new();
    for (batch, t, tk, heads, d) in shapes {
        let mut b = B::new(rng);
        let q = b.input(&[batch, t, heads * d], DType::F32, 1.0)?;
        let kv = b.input(&[batch, tk, 2 * heads * d], DType::F32, 1.0)?;
        let y = b.g.cross_attention(q, kv, heads)?;
        let desc = format!("b{batch} t{t} tk{tk} h{heads} d{d}");
        out.push(b.case("cross_attention", DType::F32, desc, y, vec![], REDUCTION)?);
    }
    Ok(out)
}

pub(super) fn timestep_embed(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // (batch, dim, t scale, diffusers' sin-first with shift 1)
    for (batch, dim, scale, diffusers) in [
        (1, 2, 1.0, false),
        (3, 7, 2.0, false),
        (2, 32, 1.5, false),
        (4, 320, 300.0, true),
    ] {
        let mut b = B::new(rng);
        let t = b.input(&[batch], DType::F32, scale)?;
        let op = if diffusers {
            TimestepEmbed {
                dim,
                max_period: 10000.0,
                freq_shift: 1.0,
                sin_first: true,
            }
        } else {
            TimestepEmbed::guided(dim)
        };
        let y = b.g.timestep_embed(t, op)?;
        let desc = format!(
            "b{batch} dim{dim} |t|~{scale}{}",
            if diffusers { " sin-first" } else { "" }
        );
        out.push(b.case("timestep_embed", DType::F32, desc, y, vec![], ROPE)?);
    }
    Ok(out)
}
