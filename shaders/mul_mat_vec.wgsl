// mul_mat_vec.wgsl — y = x · Wᵀ for few rows of x (decode; ops/matmul.rs).
// Bindings: 0 params, 1 W: array<u32> (rows n0..n0+rows of the weight, any
// W_<DTYPE> layout), 2 x: array<f32> [m, k], 3 y: array<f32> [m, n].
// Dispatch: one workgroup of 64 per weight row of this chunk, folded by
// ops::grid. Each weight group of 4 is decoded once and used for all m ≤ 8
// rows of x. f32 accumulation, tree reduction.

const WG: u32 = 64u;
const MMAX: u32 = 8u;
#include "common/reduce.wgsl"
#include "common/weights.wgsl"

struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,    // first weight row of this chunk
    rows: u32,  // weight rows in this chunk
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn x4(m: u32, g: u32) -> vec4<f32> {
    let base = m * p.k;
    let c = 4u * g;
    if (c + 3u < p.k) {
        return vec4<f32>(x[base + c], x[base + c + 1u], x[base + c + 2u], x[base + c + 3u]);
    }
    var r = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (c + i < p.k) {
            r[i] = x[base + c + i];
        }
    }
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    var acc: array<f32, MMAX>;
    let ng = (p.k + 3u) / 4u;
    for (var g = lid; g < ng; g += WG) {
        let w = w4(r, p.k, g);
        for (var m = 0u; m < p.m; m++) {
            acc[m] += dot(w, x4(m, g));
        }
    }
    for (var m = 0u; m < MMAX; m++) {
        if (m < p.m) {
            let s = wg_sum(acc[m], lid);
            if (lid == 0u) {
                y[m * p.n + p.n0 + r] = s;
            }
        }
    }
}
