// reduce.wgsl — per-row softmax and argmax over the last dimension (ops/reduce.rs).
// Bindings: 0 params, 1 x: array<f32> [rows, cols], 2 y: softmax array<f32>
// [rows, cols] / argmax array<u32> [rows].
// Dispatch: one workgroup of 256 per row, folded by ops::grid.
// Long rows on GPUs (an LM head's vocabulary) split over `ns` workgroups per
// row (params: cols, rows, ns): argmax_part (ARGMAX, grid (rows, ns)) writes
// each chunk's (value bits, index) to scratch [rows, ns, 2] in binding 2,
// argmax_combine (ARGMAX + ARGMAX_COMBINE, one workgroup per row) reads them from
// binding 1 and keeps the largest value, ties to the lower index.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    cols: u32,
    rows: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if ARGMAX_COMBINE
@group(0) @binding(1) var<storage, read> part: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
#elif ARGMAX
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif

var<workgroup> best_i: array<u32, WG>;

#if ARGMAX
// Largest (value, index) pair of the workgroup into red_f[0] / best_i[0]
// (ties to the lower index; index 0xffffffff: none).
fn arg_reduce(bv: f32, bi: u32, lid: u32) {
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
}

#if ARGMAX_COMBINE
@compute @workgroup_size(256)
fn argmax_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let ns = bitcast<u32>(p.scale);
    var bv = -3.0e38;
    var bi = 0xffffffffu;
    if (lid < ns) {
        let o = (row * ns + lid) * 2u;
        bv = bitcast<f32>(part[o]);
        bi = part[o + 1u];
    }
    arg_reduce(bv, bi, lid);
    if (lid == 0u) {
        y[row] = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
    }
}
#else
// The largest value of x[base + i] for i in [i0, i1) with lid's stride.
fn arg_scan(base: u32, i0: u32, i1: u32, lid: u32) {
    var bv = -3.0e38;
    var bi = 0xffffffffu;
    for (var i = i0 + lid; i < i1; i += WG) {
        let v = x[base + i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    arg_reduce(bv, bi, lid);
}

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    arg_scan(row * p.cols, 0u, p.cols, lid);
    if (lid == 0u) {
        y[row] = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
    }
}

// Chunk wid.y of row wid.x; y is the scratch of (value bits, index) pairs.
@compute @workgroup_size(256)
fn argmax_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    let ns = bitcast<u32>(p.scale);
    let len = (p.cols + ns - 1u) / ns;
    let i0 = min(wid.y * len, p.cols);
    arg_scan(row * p.cols, i0, min(i0 + len, p.cols), lid);
    if (lid == 0u) {
        let o = (row * ns + wid.y) * 2u;
        y[o] = bitcast<u32>(red_f[0]);
        y[o + 1u] = best_i[0];
    }
}
#endif
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
