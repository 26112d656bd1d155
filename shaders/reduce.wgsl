// reduce.wgsl — per-row softmax and argmax over the last dimension (ops/reduce.rs).
// Bindings: 0 params, 1 x: array<f32> [rows, cols], 2 y: softmax array<f32>
// [rows, cols] / argmax array<u32> [rows].
// Dispatch: one workgroup of 256 per row, folded by ops::grid.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    cols: u32,
    rows: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#if ARGMAX
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif

var<workgroup> best_i: array<u32, WG>;

#if ARGMAX
@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var bv = -3.0e38;
    var bi = 0xffffffffu;
    for (var i = lid; i < p.cols; i += WG) {
        let v = x[base + i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    red_f[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let ov = red_f[lid + s];
            let oi = best_i[lid + s];
            if (ov > red_f[lid] || (ov == red_f[lid] && oi < best_i[lid])) {
                red_f[lid] = ov;
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        y[row] = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
    }
}
#else
@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var m = -3.0e38;
    for (var i = lid; i < p.cols; i += WG) {
        m = max(m, x[base + i] * p.scale);
    }
    m = wg_max(m, lid);
    var s = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        s += exp(x[base + i] * p.scale - m);
    }
    let inv = 1.0 / wg_sum(s, lid);
    for (var i = lid; i < p.cols; i += WG) {
        y[base + i] = exp(x[base + i] * p.scale - m) * inv;
    }
}
#endif
