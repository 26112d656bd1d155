// resample.wgsl — 2×2 average pooling and nearest 2× upsampling of NHWC
// activations (ops/resample.rs).
// Bindings: 0 params, 1 x: array<f32> [B, H, W, C], 2 y: array<f32> [B, OH, OW, C].
// Dispatch: one invocation per output element, 256 per workgroup, folded by
// ops::grid. Pooling sums four values in f32 then scales by 1/4 (exact-ish).

struct Params {
    n: u32,     // output elements
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    mode: u32,  // 0 average pool, 1 nearest upsample
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let ch = i % p.c;
    let ox = (i / p.c) % p.ow;
    let oy = (i / (p.c * p.ow)) % p.oh;
    let b = i / (p.c * p.ow * p.oh);
    let img = b * p.h * p.w;
    if (p.mode == 0u) {
        let r0 = (img + 2u * oy * p.w + 2u * ox) * p.c + ch;
        let r1 = r0 + p.w * p.c;
        y[i] = ((x[r0] + x[r0 + p.c]) + (x[r1] + x[r1 + p.c])) * 0.25;
    } else {
        y[i] = x[(img + (oy / 2u) * p.w + ox / 2u) * p.c + ch];
    }
}
