// optim.wgsl — gradient accumulation, global-norm clipping and AdamW
// (ops/optim.rs), PyTorch's single-tensor AdamW step to the operation order.
// Entries (one define each); `out` is the in-place destination:
//   ACCUMULATE  out[i] += g[i]                      1 out (G), 2 g
//   ZERO        out[i] = 0                           1 out
//   SQ_NORM     out[slot] = sqrt(Σ g²)                     1 out (norms), 2 g
//               (one workgroup of 256)
//   CLIP        out = (‖·‖, coef): ‖·‖ = sqrt(Σ norms), coef = min(1,
//               max_norm / (‖·‖ + 1e-6)), or 1 when max_norm ≤ 0
//               1 out [2], 2 norms  (one workgroup of 256)
//   MOMENTS     g' = g·coef; m += (g' − m)·(1 − β1); v = v·β2 + (1 − β2)·g'²
//               1 out [2, n] (m then v), 2 g, 3 clip [2], 4 hyper
//   PARAM       p = p·decay − step·m / (sqrt(v) / bc2_sqrt + eps)
//               1 out (p), 2 mv [2, n], 3 hyper
// hyper (f32, written by the host per step): [decay = 1 − lr·wd,
// step = lr / (1 − β1^t), bc2_sqrt = sqrt(1 − β2^t), eps, 1 − β1, β2, 1 − β2]
// (f64 on the host, rounded once, as PyTorch passes them as scalars).
// Dispatch: elementwise entries ceil(n/256) workgroups of 256 (ops::grid).

const WG: u32 = 256u;
#include "common/reduce.wgsl"

struct Params {
    n: u32,
    slot: u32,
    max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn elem(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

#if ACCUMULATE
@group(0) @binding(2) var<storage, read> g: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = elem(wid, nwg, lid);
    if (i < p.n) {
        out[i] += g[i];
    }
}
#endif

#if ZERO
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = elem(wid, nwg, lid);
    if (i < p.n) {
        out[i] = 0.0;
    }
}
#endif

#if SQ_NORM
@group(0) @binding(2) var<storage, read> g: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        s += g[i] * g[i];
    }
    s = wg_sum(s, lid);
    if (lid == 0u) {
        out[p.slot] = sqrt(s);
    }
}
#endif

#if CLIP
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        s += norms[i] * norms[i];
    }
    let total = sqrt(wg_sum(s, lid));
    if (lid == 0u) {
        out[0] = total;
        out[1] = 1.0;
        if (p.max_norm > 0.0) {
            out[1] = min(1.0, p.max_norm / (total + 1e-6));
        }
    }
}
#endif

#if MOMENTS
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> clip: array<f32>;
@group(0) @binding(4) var<storage, read> hyper: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = elem(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let gv = g[i] * clip[1];
    let m = out[i];
    out[i] = m + (gv - m) * hyper[4];
    out[p.n + i] = out[p.n + i] * hyper[5] + hyper[6] * gv * gv;
}
#endif

#if PARAM
@group(0) @binding(2) var<storage, read> mv: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = elem(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let denom = sqrt(mv[p.n + i]) / hyper[2] + hyper[3];
    out[i] = out[i] * hyper[0] - hyper[1] * (mv[i] / denom);
}
#endif
