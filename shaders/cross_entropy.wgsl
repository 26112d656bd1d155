// cross_entropy.wgsl — softmax cross-entropy over rows of logits
// (ops/cross_entropy.rs). labels[r] = 0xFFFFFFFF (or ≥ vocab) masks row r.
// LOSS: out[r] = logsumexp(z_r) − z_r[label_r] (0 when masked).
// Otherwise (the gradient): out[r, v] = scale·(softmax(z_r)_v − [v = label_r])
//   with scale = scale_buf[0] (1 / the batch's target count), 0 when masked.
// Bindings: 0 params, 1 logits [rows, vocab], 2 labels [rows] u32,
// 3 scale [1] f32 (logits itself for LOSS), 4 out.
// Dispatch: one workgroup of 256 per row, folded by ops::grid; f32 sums.

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    rows: u32,
    vocab: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.vocab;
    let label = labels[row];
    let masked = label >= p.vocab;
    var mx = -3.0e38;
    for (var i = lid; i < p.vocab; i += WG) {
        mx = max(mx, z[base + i]);
    }
    mx = wg_max(mx, lid);
    var s = 0.0;
    for (var i = lid; i < p.vocab; i += WG) {
        s += exp(z[base + i] - mx);
    }
    s = wg_sum(s, lid);
#if LOSS
    if (lid == 0u) {
        if (masked) {
            out[row] = 0.0;
        } else {
            out[row] = log(s) + mx - z[base + label];
        }
    }
#else
    let k = select(scale[0], 0.0, masked);
    let inv = 1.0 / s;
    for (var i = lid; i < p.vocab; i += WG) {
        var v = exp(z[base + i] - mx) * inv;
        if (i == label) {
            v -= 1.0;
        }
        out[base + i] = k * v;
    }
#endif
}
