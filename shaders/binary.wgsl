// binary.wgsl — element-wise f32 binary ops (ops/binary.rs).
// Bindings: 0 params, 1 a: array<f32> (n), 2 b: array<f32> (nb, broadcast as
// b[(i / (rep·inner))·inner + i % inner]), 3 y: array<f32> (n). Kind 3 (glu, the prefill epilogue of
// ops/matmul_fused.rs) reads a as [rows, 2·cols] and b as an optional residual;
// kind 4 (GEGLU, diffusers' feed-forward) reads a as [rows, 2·cols] too:
// y[r, c] = a[r, c] · gelu_erf(a[r, cols + c]).
// Dispatch: ceil(n/256) workgroups of 256, folded by ops::grid.

struct Params {
    n: u32,
    nb: u32,
    kind: u32,   // 0 add, 1 mul, 2 swiglu: silu(a) * b, 3 glu, 4 geglu (below)
    cols: u32,   // glu: output columns per row
    has_res: u32,
    inner: u32,  // add/mul/swiglu: size of the dims b shares after the broadcast run
    rep: u32,    // size of the broadcast run (1: no broadcast)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

#include "common/erf.wgsl"

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    if (p.kind == 3u) {
        // glu: a is [rows, 2·cols]; y[r, c] = silu(a[r, c]) · a[r, cols + c] (+ b[i]).
        let row = i / p.cols;
        let col = i % p.cols;
        let g = a[row * 2u * p.cols + col];
        var v = g / (1.0 + exp(-g)) * a[row * 2u * p.cols + p.cols + col];
        if (p.has_res != 0u) {
            v += b[i];
        }
        y[i] = v;
        return;
    }
    if (p.kind == 4u) {
        let row = i / p.cols;
        let col = i % p.cols;
        let g = a[row * 2u * p.cols + p.cols + col];
        y[i] = a[row * 2u * p.cols + col] * 0.5 * g * (1.0 + erf_approx(g * 0.7071067811865476));
        return;
    }
    let av = a[i];
    let bv = b[(i / (p.rep * p.inner)) * p.inner + i % p.inner];
    var r: f32;
    switch p.kind {
        case 0u: { r = av + bv; }
        case 1u: { r = av * bv; }
        default: { r = av / (1.0 + exp(-av)) * bv; }
    }
    y[i] = r;
}
