// norm.wgsl — RMSNorm and LayerNorm over the last dimension (ops/norm.rs).
// Bindings: 0 params, 1 x: array<f32> [rows, cols], 2 w: array<f32> [cols]
// (x itself when absent), 3 b: array<f32> [cols] (x itself when absent),
// 4 y: array<f32> [rows, cols].
// Dispatch: one workgroup of 256 per row, folded by ops::grid.
// Accumulation in f32 (tree reduction); tolerance in the parity registry.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    cols: u32,
    rows: u32,
    eps: f32,
    kind: u32,   // 0 rms, 1 layer
    has_w: u32,
    has_b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var mean = 0.0;
    if (p.kind == 1u) {
        var s = 0.0;
        for (var i = lid; i < p.cols; i += WG) {
            s += x[base + i];
        }
        mean = wg_sum(s, lid) / f32(p.cols);
    }
    var ss = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        let d = x[base + i] - mean;
        ss += d * d;
    }
    let inv = inverseSqrt(wg_sum(ss, lid) / f32(p.cols) + p.eps);
    for (var i = lid; i < p.cols; i += WG) {
        var v = (x[base + i] - mean) * inv;
        if (p.has_w != 0u) {
            v *= w[i];
        }
        if (p.has_b != 0u) {
            v += b[i];
        }
        y[base + i] = v;
    }
}
