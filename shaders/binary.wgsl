// binary.wgsl — element-wise f32 binary ops (ops/binary.rs).
// Bindings: 0 params, 1 a: array<f32> (n), 2 b: array<f32> (nb, broadcast as
// b[i % nb]), 3 y: array<f32> (n).
// Dispatch: ceil(n/256) workgroups of 256, folded by ops::grid.

struct Params {
    n: u32,
    nb: u32,
    kind: u32,   // 0 add, 1 mul, 2 swiglu: silu(a) * b
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let av = a[i];
    let bv = b[i % p.nb];
    var r: f32;
    switch p.kind {
        case 0u: { r = av + bv; }
        case 1u: { r = av * bv; }
        default: { r = av / (1.0 + exp(-av)) * bv; }
    }
    y[i] = r;
}
