// mul_mat_back.wgsl — the gradients of y = x · Wᵀ (ops/matmul_back.rs).
//
// INPUT_GRAD: dx[m, k] (+)= Σ_n dy[m, n] · W[n, k] with W in any W_<DTYPE>
//   layout, decoded on the fly four weights at a time (w4), so a quantized
//   base is never dequantized into memory. Each invocation owns 4 rows of dx
//   × 4 consecutive columns (16 accumulators) and walks the weight rows of
//   this chunk; a weight split across bindings is one dispatch per chunk,
//   chunks after the first add to dx (accumulate = 1).
//   Bindings: 0 params, 1 W (rows n0..n0+rows), 2 dy [m, n], 3 dx [m, k].
// WEIGHT_GRAD: dW[n, k] = Σ_m dy[m, n] · x[m, k] (all f32). Each invocation
//   owns 4 rows of dW × 4 columns and walks the m rows.
//   Bindings: 0 params, 1 dy [m, n], 2 x [m, k], 3 dW [n, k].
// Dispatch: 64 invocations per workgroup, one per (4-row block, column
// group), folded by ops::grid. f32 accumulation.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,
    rows: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

#if INPUT_GRAD
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
#include "common/weights.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let ng = (p.k + 3u) / 4u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let g = idx % ng;
    let m0 = (idx / ng) * 4u;
    if (m0 >= p.m) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    let mc = min(4u, p.m - m0);
    for (var r = 0u; r < p.rows; r++) {
        let w = w4(r, p.k, g);
        let col = p.n0 + r;
        for (var i = 0u; i < mc; i++) {
            acc[i] += dy[(m0 + i) * p.n + col] * w;
        }
    }
    for (var i = 0u; i < mc; i++) {
        for (var c = 0u; c < 4u; c++) {
            let kk = 4u * g + c;
            if (kk < p.k) {
                let o = (m0 + i) * p.k + kk;
                if (p.accumulate != 0u) {
                    dx[o] += acc[i][c];
                } else {
                    dx[o] = acc[i][c];
                }
            }
        }
    }
}
#endif

#if WEIGHT_GRAD
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

fn x4(m: u32, g: u32) -> vec4<f32> {
    let base = m * p.k;
    let c = 4u * g;
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
    let ng = (p.k + 3u) / 4u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let g = idx % ng;
    let n0 = (idx / ng) * 4u;
    if (n0 >= p.n) {
        return;
    }
    let nc = min(4u, p.n - n0);
    var acc: array<vec4<f32>, 4>;
    for (var m = 0u; m < p.m; m++) {
        let xv = x4(m, g);
        for (var i = 0u; i < nc; i++) {
            acc[i] += dy[m * p.n + n0 + i] * xv;
        }
    }
    for (var i = 0u; i < nc; i++) {
        for (var c = 0u; c < 4u; c++) {
            let kk = 4u * g + c;
            if (kk < p.k) {
                dw[(n0 + i) * p.k + kk] = acc[i][c];
            }
        }
    }
}
#endif
