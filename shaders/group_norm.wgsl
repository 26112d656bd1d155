// group_norm.wgsl — group norm over NHWC activations with optional
// scale-shift and SiLU (ops/group_norm.rs; the CPU reference mirrored).
// Bindings: 0 params, 1 x: array<f32> [B, N, C], 2 gamma [C], 3 beta [C],
// 4 ss: array<f32> [B, 2C] (scale | shift; x itself when absent), 5 y [B, N, C].
// Dispatch: one workgroup of 256 per (sample, group), folded by ops::grid.
// Two passes over the group (mean, then squared deviations) and a third to
// write; f32 tree/subgroup sums (REDUCTION tolerance in the parity registry).
// SPLIT (GPUs): three dispatches that read memory in order (NHWC puts a
// group's values C apart, so the per-group loops above touch one value per
// memory line when C/G is small):
//  `stats`  a workgroup per (sample, chunk of chunk_len pixels): for every
//           channel, the chunk's mean and sum of squared deviations (sums of
//           x − x₀, x₀ the channel's first value in the chunk), into `part`;
//  `finish` a workgroup per (sample, group): merges its chunks × channels
//           (Chan et al.'s pairwise update, per invocation then as a tree)
//           into (mean, 1/sqrt(var + eps)), then per channel the affine
//           y = (x − mean)·a + o with γ, β and the scale-shift folded in;
//  `apply`  an invocation per 4 channels of a pixel (per element when
//           C % 4 != 0): (x − mean)·a + o (+ SiLU).
// `part` (binding 6, scratch): [B][chunks][C] (mean, M2), then three
// [B][C] planes: mean, a, o.

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
    chunks: u32,     // SPLIT: pixel chunks per sample
    chunk_len: u32,  // SPLIT: pixels per chunk
}

@group(0) @binding(0) var<uniform> p: Params;
#if APPLY4
// `apply` when C % 4 == 0: 4 channels of a pixel are one vector.
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> ss: array<f32>;
#if APPLY4
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;
#else
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
#endif
#if SPLIT
@group(0) @binding(6) var<storage, read_write> part: array<f32>;
#endif

#if !APPLY4
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


#if SERIAL
// CPU adapters, groups of at most 8,192 values: an invocation per (sample,
// group), no barriers — SwiftShader switches every SIMD group of a workgroup
// at each barrier, which cost more than these groups' arithmetic. Workgroups
// of 8 (one SIMD group on lavapipe, two on SwiftShader).
@compute @workgroup_size(8)
fn serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let id = (wid.x + wid.y * nwg.x) * 8u + lid;
    if (id >= p.batch * p.groups) {
        return;
    }
    let b = id / p.groups;
    let g = id % p.groups;
    let cg = p.c / p.groups;
    let count = f32(p.n * cg);
    let base = b * p.n * p.c + g * cg;
    let end = base + p.n * p.c;
    var s = 0.0;
    for (var i = base; i < end; i += p.c) {
        for (var c = 0u; c < cg; c++) {
            s += x[i + c];
        }
    }
    let mean = s / count;
    var sq = 0.0;
    for (var i = base; i < end; i += p.c) {
        for (var c = 0u; c < cg; c++) {
            let d = x[i + c] - mean;
            sq += d * d;
        }
    }
    let inv = inverseSqrt(sq / count + p.eps);
    for (var c = 0u; c < cg; c++) {
        let ch = g * cg + c;
        // ((x − mean)·inv·γ + β)·(1 + scale) + shift = (x − mean)·a + o
        var a = inv * gamma[ch];
        var o = beta[ch];
        if (p.has_ss != 0u) {
            let k = 1.0 + ss[b * 2u * p.c + ch];
            a *= k;
            o = o * k + ss[b * 2u * p.c + p.c + ch];
        }
        for (var i = base + c; i < end; i += p.c) {
            var v = (x[i] - mean) * a + o;
            if (p.silu != 0u) {
                v = v / (1.0 + exp(-v));
            }
            y[i] = v;
        }
    }
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
    let mean = sum_range(base, cg, 0u, count, lid) / f32(count);
    let inv = inverseSqrt(sq_range(base, cg, 0u, count, mean, lid) / f32(count) + p.eps);
    apply_range(b, g, base, cg, 0u, count, mean, inv, lid);
}

#endif

#if SPLIT
#if !APPLY4
var<workgroup> sq_s: array<f32, 256>;
var<workgroup> sq_q: array<f32, 256>;

@compute @workgroup_size(256)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    if (id >= p.batch * p.chunks) {
        return;
    }
    let b = id / p.chunks;
    let chunk = id % p.chunks;
    let p0 = chunk * p.chunk_len;
    let p1 = min(p.n, p0 + p.chunk_len);
    let np = f32(p1 - p0);
    // `per` invocations share a channel (pixels lane, lane + per, ...);
    // cw channels per round.
    let cw = min(p.c, WG);
    let per = WG / cw;
    let lane = lid / cw;
    for (var cb = 0u; cb < p.c; cb += cw) {
        let ch = cb + lid % cw;
        var s = 0.0;
        var q = 0.0;
        if (lane < per && ch < p.c) {
            let row = b * p.n;
            let x0 = x[(row + p0) * p.c + ch];
            // Four pixels' loads in flight per step, summed in pixel order.
            var px = p0 + lane;
            for (; px + 3u * per < p1; px += 4u * per) {
                let v0 = x[(row + px) * p.c + ch];
                let v1 = x[(row + px + per) * p.c + ch];
                let v2 = x[(row + px + 2u * per) * p.c + ch];
                let v3 = x[(row + px + 3u * per) * p.c + ch];
                let d = vec4<f32>(v0, v1, v2, v3) - x0;
                s += d.x;
                q += d.x * d.x;
                s += d.y;
                q += d.y * d.y;
                s += d.z;
                q += d.z * d.z;
                s += d.w;
                q += d.w * d.w;
            }
            for (; px < p1; px += per) {
                let d = x[(row + px) * p.c + ch] - x0;
                s += d;
                q += d * d;
            }
        }
        sq_s[lid] = s;
        sq_q[lid] = q;
        workgroupBarrier();
        if (lid < cw && ch < p.c) {
            for (var j = 1u; j < per; j++) {
                s += sq_s[lid + j * cw];
                q += sq_q[lid + j * cw];
            }
            let o = 2u * ((b * p.chunks + chunk) * p.c + ch);
            part[o] = x[(b * p.n + p0) * p.c + ch] + s / np;
            part[o + 1u] = max(q - s * s / np, 0.0);
        }
        workgroupBarrier();
    }
}

var<workgroup> mg_n: array<f32, 256>;
var<workgroup> mg_m: array<f32, 256>;
var<workgroup> mg_q: array<f32, 256>;

@compute @workgroup_size(256)
fn finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = wid.x + wid.y * nwg.x;
    if (i >= p.batch * p.groups) {
        return;
    }
    let b = i / p.groups;
    let g = i % p.groups;
    let cg = p.c / p.groups;
    // Each invocation merges items lid, lid + WG, ... (a chunk's channel),
    // then the workgroup merges the 256 partial (count, mean, M2) as a tree.
    var cnt = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var it = lid; it < p.chunks * cg; it += WG) {
        let chunk = it / cg;
        let np = f32(min(p.n, (chunk + 1u) * p.chunk_len) - chunk * p.chunk_len);
        let o = 2u * ((b * p.chunks + chunk) * p.c + g * cg + it % cg);
        let nt = cnt + np;
        let d = part[o] - mean;
        mean += d * np / nt;
        m2 += part[o + 1u] + d * d * cnt * np / nt;
        cnt = nt;
    }
    mg_n[lid] = cnt;
    mg_m[lid] = mean;
    mg_q[lid] = m2;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s && mg_n[lid + s] > 0.0) {
            let na = mg_n[lid];
            let nb = mg_n[lid + s];
            let nt = na + nb;
            let d = mg_m[lid + s] - mg_m[lid];
            mg_m[lid] = mg_m[lid] + d * nb / nt;
            mg_q[lid] = mg_q[lid] + mg_q[lid + s] + d * d * na * nb / nt;
            mg_n[lid] = nt;
        }
        workgroupBarrier();
    }
    // The tree ends with a barrier: every invocation reads the group's
    // (mean, 1/σ) and folds γ, β and the scale-shift into one affine per
    // channel, y = (x − mean)·a + o, for `apply`.
    let inv = inverseSqrt(mg_q[0] / mg_n[0] + p.eps);
    let st = 2u * p.batch * p.chunks * p.c;
    let bc = p.batch * p.c;
    for (var j = lid; j < cg; j += WG) {
        let ch = g * cg + j;
        var a = inv * gamma[ch];
        var o = beta[ch];
        if (p.has_ss != 0u) {
            let k = 1.0 + ss[b * 2u * p.c + ch];
            a *= k;
            o = o * k + ss[b * 2u * p.c + p.c + ch];
        }
        let at = st + b * p.c + ch;
        part[at] = mg_m[0];
        part[at + bc] = a;
        part[at + 2u * bc] = o;
    }
}

#endif

// An invocation per 4 consecutive channels of a pixel (APPLY4, C % 4 == 0:
// one vector load and store) or per value; ops/group_norm.rs sizes the grid
// the same way. One index division per invocation.
@compute @workgroup_size(256)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
#if APPLY4
    let v4 = (wid.x + wid.y * nwg.x) * WG + lid;
    let i0 = 4u * v4;
#else
    let i0 = (wid.x + wid.y * nwg.x) * WG + lid;
#endif
    let nc = p.n * p.c;
    if (i0 >= p.batch * nc) {
        return;
    }
    // (sample, channel) of the first value: the affine's index.
    let at = 2u * p.batch * p.chunks * p.c + (i0 / nc) * p.c + i0 % p.c;
    let bc = p.batch * p.c;
#if APPLY4
    let m = vec4<f32>(part[at], part[at + 1u], part[at + 2u], part[at + 3u]);
    let a = vec4<f32>(part[at + bc], part[at + bc + 1u], part[at + bc + 2u], part[at + bc + 3u]);
    let ab = at + 2u * bc;
    let o = vec4<f32>(part[ab], part[ab + 1u], part[ab + 2u], part[ab + 3u]);
    var v = (x[v4] - m) * a + o;
    if (p.silu != 0u) {
        v = v / (1.0 + exp(-v));
    }
    y[v4] = v;
#else
    var v = (x[i0] - part[at]) * part[at + bc] + part[at + 2u * bc];
    if (p.silu != 0u) {
        v = v / (1.0 + exp(-v));
    }
    y[i0] = v;
#endif
}
#endif
