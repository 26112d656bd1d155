// glu_back.wgsl — the gradients of SwiGLU y = silu(g)·u (ops/glu_back.rs).
//   which = 0: dg = dy·u·σ(g)·(1 + g·(1 − σ(g)))
//   which = 1: du = dy·silu(g) = dy·g·σ(g)
// Bindings: 0 params, 1 g, 2 u, 3 dy, 4 out (all f32, n elements).
// Dispatch: ceil(n/256) workgroups of 256, folded by ops::grid.

struct Params {
    n: u32,
    which: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let gv = g[i];
    let s = 1.0 / (1.0 + exp(-gv));
    if (p.which == 0u) {
        y[i] = dy[i] * up[i] * s * (1.0 + gv * (1.0 - s));
    } else {
        y[i] = dy[i] * gv * s;
    }
}
