// norm_back.wgsl — the input gradient of RMSNorm (ops/norm_back.rs).
// y = x·r·w with r = 1/sqrt(mean(x²) + eps), so
//   dx_i = r·w_i·dy_i − x_i · r³/n · Σ_j w_j·dy_j·x_j.
// Bindings: 0 params, 1 x [rows, cols], 2 w [cols] (x itself when has_w = 0),
// 3 dy [rows, cols], 4 dx [rows, cols].
// Dispatch: one workgroup of 256 per row, folded by ops::grid; f32 tree sums.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    cols: u32,
    rows: u32,
    eps: f32,
    has_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn wdy(base: u32, i: u32) -> f32 {
    if (p.has_w != 0u) {
        return w[i] * dy[base + i];
    }
    return dy[base + i];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var ss = 0.0;
    var sd = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        let xv = x[base + i];
        ss += xv * xv;
        sd += wdy(base, i) * xv;
    }
    let n = f32(p.cols);
    let r = inverseSqrt(wg_sum(ss, lid) / n + p.eps);
    let c = wg_sum(sd, lid) * r * r * r / n;
    for (var i = lid; i < p.cols; i += WG) {
        dx[base + i] = r * wdy(base, i) - x[base + i] * c;
    }
}
