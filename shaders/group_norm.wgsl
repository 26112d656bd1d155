// group_norm.wgsl — group norm over NHWC activations with optional
// scale-shift and SiLU (ops/group_norm.rs; the CPU reference mirrored).
// Bindings: 0 params, 1 x: array<f32> [B, N, C], 2 gamma [C], 3 beta [C],
// 4 ss: array<f32> [B, 2C] (scale | shift; x itself when absent), 5 y [B, N, C].
// Dispatch: one workgroup of 256 per (sample, group), folded by ops::grid.
// Two passes over the group (mean, then squared deviations) and a third to
// write; f32 tree/subgroup sums (REDUCTION tolerance in the parity registry).
// SPLIT (GPUs, few groups, large groups): the same three passes as three
// dispatches of a workgroup per (sample, group, chunk of chunk_len
// elements) — SPLIT_SUM, SPLIT_SQ, SPLIT_APPLY — with partial sums in a
// scratch buffer (binding 6), so B·G·chunks workgroups share the work.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    n: u32,       // pixels per sample
    c: u32,       // channels
    groups: u32,
    batch: u32,
    eps: f32,
    silu: u32,
    has_ss: u32,
    chunks: u32,     // workgroups per (sample, group): 1 unless SPLIT
    chunk_len: u32,  // elements of the group per workgroup
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> ss: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
#if SPLIT
// Per (sample, group, chunk): (sum, sum of squared deviations).
@group(0) @binding(6) var<storage, read_write> part: array<f32>;
#endif

// Element e (channel-major within the group) of the group at `base`.
fn elem(base: u32, cg: u32, e: u32) -> u32 {
    return base + (e / cg) * p.c + e % cg;
}

fn sum_range(base: u32, cg: u32, lo: u32, hi: u32, lid: u32) -> f32 {
    var s = 0.0;
    for (var e = lo + lid; e < hi; e += WG) {
        s += x[elem(base, cg, e)];
    }
    return wg_sum(s, lid);
}

fn sq_range(base: u32, cg: u32, lo: u32, hi: u32, mean: f32, lid: u32) -> f32 {
    var sq = 0.0;
    for (var e = lo + lid; e < hi; e += WG) {
        let d = x[elem(base, cg, e)] - mean;
        sq += d * d;
    }
    return wg_sum(sq, lid);
}

fn apply_range(b: u32, g: u32, base: u32, cg: u32, lo: u32, hi: u32, mean: f32, inv: f32,
               lid: u32) {
    for (var e = lo + lid; e < hi; e += WG) {
        let i = elem(base, cg, e);
        let ch = g * cg + e % cg;
        var v = (x[i] - mean) * inv * gamma[ch] + beta[ch];
        if (p.has_ss != 0u) {
            v = v * (1.0 + ss[b * 2u * p.c + ch]) + ss[b * 2u * p.c + p.c + ch];
        }
        if (p.silu != 0u) {
            v = v / (1.0 + exp(-v));
        }
        y[i] = v;
    }
}

#if SPLIT
// Σ over the chunks of (sample, group) bg of part[2·chunk + which].
fn part_total(bg: u32, which: u32) -> f32 {
    var t = 0.0;
    for (var i = 0u; i < p.chunks; i++) {
        t += part[2u * (bg * p.chunks + i) + which];
    }
    return t;
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    // Uniform exit: every invocation of a workgroup takes the same branch.
    if (id >= p.batch * p.groups * p.chunks) {
        return;
    }
    let bg = id / p.chunks;
    let b = bg / p.groups;
    let g = bg % p.groups;
    let cg = p.c / p.groups;
    let count = p.n * cg;
    let base = b * p.n * p.c + g * cg;
    let lo = (id % p.chunks) * p.chunk_len;
    let hi = min(count, lo + p.chunk_len);
#if SPLIT_SUM
    let s = sum_range(base, cg, lo, hi, lid);
    if (lid == 0u) {
        part[2u * id] = s;
    }
#elif SPLIT_SQ
    let mean = part_total(bg, 0u) / f32(count);
    let q = sq_range(base, cg, lo, hi, mean, lid);
    if (lid == 0u) {
        part[2u * id + 1u] = q;
    }
#elif SPLIT_APPLY
    let mean = part_total(bg, 0u) / f32(count);
    let inv = inverseSqrt(part_total(bg, 1u) / f32(count) + p.eps);
    apply_range(b, g, base, cg, lo, hi, mean, inv, lid);
#else
    let mean = sum_range(base, cg, 0u, count, lid) / f32(count);
    let inv = inverseSqrt(sq_range(base, cg, 0u, count, mean, lid) / f32(count) + p.eps);
    apply_range(b, g, base, cg, 0u, count, mean, inv, lid);
#endif
}
