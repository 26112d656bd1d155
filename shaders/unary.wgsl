// unary.wgsl — element-wise f32 functions (ops/unary.rs).
// Bindings: 0 params, 1 x: array<f32>, 2 y: array<f32>.
// Dispatch: ceil(n/256) workgroups of 256, folded into (x, y) by ops::grid.
// Tolerance: see parity registry (transcendentals: WGSL exp/tanh are not
// correctly rounded; errors of a few ulp relative).

struct Params {
    n: u32,
    kind: u32,   // 0 silu, 1 gelu (tanh), 2 gelu (erf), 3 scale, 4 quick gelu, 5 relu, 6 tanh
    s: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

#include "common/erf.wgsl"

// tanh through exp, safe for large |u|.
fn tanh_safe(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

fn gelu_tanh(v: f32) -> f32 {
    let c = 0.7978845608028654;
    return 0.5 * v * (1.0 + tanh_safe(c * (v + 0.044715 * v * v * v)));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    var r: f32;
    switch p.kind {
        case 0u: { r = v / (1.0 + exp(-v)); }
        case 1u: { r = gelu_tanh(v); }
        case 2u: { r = 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
        case 4u: { r = v / (1.0 + exp(-1.702 * v)); }
        case 5u: { r = max(v, 0.0); }
        case 6u: { r = tanh_safe(v); }
        default: { r = v * p.s; }
    }
    y[i] = r;
}
