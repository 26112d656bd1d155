// group_norm.wgsl — group norm over NHWC activations with optional
// scale-shift and SiLU (ops/group_norm.rs; the CPU reference mirrored).
// Bindings: 0 params, 1 x: array<f32> [B, N, C], 2 gamma [C], 3 beta [C],
// 4 ss: array<f32> [B, 2C] (scale | shift; x itself when absent), 5 y [B, N, C].
// Dispatch: one workgroup of 256 per (sample, group), folded by ops::grid.
// Two passes over the group (mean, then squared deviations) and a third to
// write; f32 tree/subgroup sums (REDUCTION tolerance in the parity registry).

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> ss: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    // Uniform exit: every invocation of a workgroup takes the same branch.
    if (id >= p.batch * p.groups) {
        return;
    }
    let b = id / p.groups;
    let g = id % p.groups;
    let cg = p.c / p.groups;
    let count = p.n * cg;
    let base = b * p.n * p.c + g * cg;
    var s = 0.0;
    for (var e = lid; e < count; e += WG) {
        s += x[base + (e / cg) * p.c + e % cg];
    }
    let mean = wg_sum(s, lid) / f32(count);
    var sq = 0.0;
    for (var e = lid; e < count; e += WG) {
        let d = x[base + (e / cg) * p.c + e % cg] - mean;
        sq += d * d;
    }
    let inv = inverseSqrt(wg_sum(sq, lid) / f32(count) + p.eps);
    for (var e = lid; e < count; e += WG) {
        let i = base + (e / cg) * p.c + e % cg;
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
