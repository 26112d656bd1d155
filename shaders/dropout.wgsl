// dropout.wgsl — dropout with a counter-based mask (ops/dropout.rs):
// y[i] = x[i]·keep when lowbias32(i ^ salt·0x9E3779B9 ^ seed·0x85EBCA6B) ≥
// threshold, else 0; seed = syms[seed_sym]. Integer math: every backend
// draws the same mask.
// Bindings: 0 params, 1 x, 2 y, 3 syms. One thread per element, 256 per
// workgroup, folded by ops::grid.

struct Params {
    n: u32,
    seed_sym: u32,
    salt: u32,
    threshold: u32,
    keep: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> syms: array<u32>;

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7FEB352Du;
    h ^= h >> 15u;
    h *= 0x846CA68Bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let h = lowbias32(i ^ (p.salt * 0x9E3779B9u) ^ (syms[p.seed_sym] * 0x85EBCA6Bu));
    y[i] = select(x[i] * p.keep, 0.0, h < p.threshold);
}
