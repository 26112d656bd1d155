// get_rows.wgsl — embedding gather: y[i, :] = W[ids[i], :] dequantized to f32
// (ops/embed.rs). Bindings: 0 params, 1 W: array<u32> (rows r0..r0+rows of the
// table, any W_<DTYPE>), 2 ids: array<u32> [n], 3 y: array<f32> [n, d].
// Dispatch: ceil(n·ceil(d/4)/256) workgroups of 256, one thread per group of 4
// output elements, folded by ops::grid. A thread writes only when ids[i] falls
// in this chunk; the last chunk writes zeros for ids past the table (ids from
// the host are validated before upload, so that only guards the device).

#include "common/weights.wgsl"

struct Params {
    n: u32,
    d: u32,
    r0: u32,
    rows: u32,
    last: u32,   // 1 for the last chunk
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = (wid.x + wid.y * nwg.x) * 256u + lid;
    let ng = (p.d + 3u) / 4u;
    if (t >= p.n * ng) {
        return;
    }
    let i = t / ng;
    let g = t % ng;
    let id = ids[i];
    var v = vec4<f32>(0.0);
    if (id >= p.r0 && id < p.r0 + p.rows) {
        v = w4(id - p.r0, p.d, g);
    } else if (!(p.last == 1u && id >= p.r0 + p.rows)) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * g + j;
        if (c < p.d) {
            y[i * p.d + c] = v[j];
        }
    }
}
