// rope.wgsl — rotary position embedding (ops/rope.rs).
// Bindings: 0 params, 1 x: array<f32> [t, h, d] (or rows of ld values, the
// heads starting at column col0: a window of a fused Q/K/V row), 2 y: array<f32> [t, h, d],
// 3 syms: array<u32> (run-time symbols; syms[pos_sym] = position of token 0),
// 4 factors: array<f32> [n_rot/2] (θ_j divisors; x itself when has_factors = 0).
// Dispatch: one thread per pair (t·h·d/2), 256 per workgroup, folded by ops::grid.
// CACHE (+ DST_F16): entry rope_cache ropes the window and writes it into a
// KV cache `y [h, cap, d]` (in place) at rows pos..pos+t, as write_cache in
// copy.wgsl does: one dispatch for RoPE on K plus its cache write. One
// thread per two adjacent outputs (one f16 pair); same arithmetic as main.
// θ_j and the angle are f32 products as in HF; sin/cos are evaluated here
// (octant reduction + Taylor polynomials, ≤ 4e-7 absolute error) because
// WGSL/Vulkan only promise 2^-11 from the built-ins, and software adapters
// (SwiftShader: Chromium's WebGPU without a GPU) deliver about that.

struct Params {
    t: u32,
    h: u32,
    d: u32,
    n_rot: u32,
    neox: u32,
    pos_sym: u32,
    base: f32,
    scaled: u32,
    factor: f32,
    low: f32,
    high: f32,
    orig_ctx: u32,
    has_factors: u32,
    period: u32,   // 0, or tokens per sequence (position = pos + t % period)
    inverse: u32,  // 1: rotate by −angle (the gradient)
    col0: u32,     // x: first column of head 0 in each row (0 unless a window)
    ld: u32,       // x: values per row (h·d unless a window)
#if CACHE
    cap: u32,      // y: positions per cache head
#endif
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#if DST_F16
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif
@group(0) @binding(3) var<storage, read> syms: array<u32>;
@group(0) @binding(4) var<storage, read> factors: array<f32>;

#include "common/trig.wgsl"
#include "common/rope.wgsl"

fn rope_x(i: u32) -> f32 {
    return x[i];
}

#if !CACHE
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let q = (wid.x + wid.y * nwg.x) * 256u + lid;
    let half_d = p.d / 2u;
    if (q >= p.t * p.h * half_d) {
        return;
    }
    let j = q % half_d;
    let row = q / half_d;             // t·h index
    let ti = row / p.h;
    let base = row * p.d;
    let xb = ti * p.ld + p.col0 + (row % p.h) * p.d;
    let half_rot = p.n_rot / 2u;
    if (j >= half_rot) {
        // Past n_rot: copy the pair (2j, 2j+1), which lies in [n_rot, d).
        y[base + 2u * j] = x[xb + 2u * j];
        y[base + 2u * j + 1u] = x[xb + 2u * j + 1u];
        return;
    }
    var a = 2u * j;
    var b = a + 1u;
    if (p.neox != 0u) {
        a = j;
        b = a + half_rot;
    }
    var tp = ti;
    if (p.period != 0u) {
        tp = ti % p.period;
    }
    let pos = f32(syms[p.pos_sym] + tp);
    var inv = inv_freq(j);
    if (p.has_factors != 0u) {
        inv = inv / factors[j];
    }
    let cs = cos_sin(pos * inv);
    let c = cs.x;
    let s = select(cs.y, -cs.y, p.inverse != 0u);
    let x0 = x[xb + a];
    let x1 = x[xb + b];
    y[base + a] = x0 * c - x1 * s;
    y[base + b] = x0 * s + x1 * c;
}
#endif

#if CACHE
@compute @workgroup_size(256)
fn rope_cache(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = 2u * ((wid.x + wid.y * nwg.x) * 256u + lid);
    if (e >= p.t * p.h * p.d) {
        return;
    }
    let c = e % p.d;
    let hh = (e / p.d) % p.h;
    let ti = e / (p.d * p.h);
    let p0 = syms[p.pos_sym];
    let pos = f32(p0 + ti);
    let xb = ti * p.ld + p.col0 + hh * p.d;
    let y0 = rotated(xb, c, pos);
    let y1 = rotated(xb, c + 1u, pos);
    let o = (hh * p.cap + p0 + ti) * p.d + c;
#if DST_F16
    y[o >> 1u] = pack2x16float(vec2<f32>(y0, y1));
#else
    y[o] = y0;
    y[o + 1u] = y1;
#endif
}
#endif
