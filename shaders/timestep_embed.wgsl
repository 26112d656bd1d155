// timestep_embed.wgsl — sinusoidal timestep embedding (ops/timestep.rs).
// Bindings: 0 params, 1 t: array<f32> [B], 2 y: array<f32> [B, dim].
// Dispatch: one invocation per output element, 256 per workgroup, folded by
// ops::grid. freq_i = exp(−ln(max_period)·i/(half − shift)); the angle is an
// f32 product (error ≤ |arg|·2⁻²³), sin/cos from common/trig.wgsl.

struct Params {
    n: u32,
    dim: u32,
    ln_period: f32,
    shift: f32,
    sin_first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

#include "common/trig.wgsl"

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let half = p.dim / 2u;
    let col = i % p.dim;
    if (col >= 2u * half) {
        y[i] = 0.0;  // odd dim: zero padding
        return;
    }
    let j = col % half;
    let arg = t[i / p.dim] * exp(-p.ln_period * f32(j) / (f32(half) - p.shift));
    let cs = cos_sin(arg);
    // First half cos (sin with sin_first), second half the other.
    let first_is_cos = p.sin_first == 0u;
    if ((col < half) == first_is_cos) {
        y[i] = cs.x;
    } else {
        y[i] = cs.y;
    }
}
