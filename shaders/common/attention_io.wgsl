// common/attention_io.wgsl — the parameters and (COMBINE aside) the
// bindings of attention.wgsl and attention_coop.wgsl: q, the K/V caches
// (f16 pairs with KV_F16, vec4 with KV_VEC4, else f32; read_write with
// NEW_KV), the position symbols, the output, and with ROPE_Q the
// frequency divisors and the rope helpers.

struct Params {
    t: u32,
    hq: u32,
    hkv: u32,
    d: u32,
    cap: u32,
    scale: f32,
    pos_sym: u32,
    ns: u32,
    window: u32,
#if ROPE_Q
    n_rot: u32,
    neox: u32,
    rope_pos_sym: u32,
    base: f32,
    scaled: u32,
    factor: f32,
    low: f32,
    high: f32,
    orig_ctx: u32,
    has_factors: u32,
    period: u32,
    inverse: u32,
    col0: u32,
    ld: u32,
#endif
#if NEW_KV
    k_col0: u32,
    v_col0: u32,
#endif
}

@group(0) @binding(0) var<uniform> p: Params;

#if !COMBINE
@group(0) @binding(1) var<storage, read> q: array<f32>;
#if KV_F16
#if NEW_KV
@group(0) @binding(2) var<storage, read_write> kc: array<u32>;
#else
@group(0) @binding(2) var<storage, read> kc: array<u32>;
#endif
#if NEW_KV
@group(0) @binding(3) var<storage, read_write> vc: array<u32>;
#else
@group(0) @binding(3) var<storage, read> vc: array<u32>;
#endif
fn k_at(e: u32) -> f32 {
    return unpack2x16float(kc[e >> 1u] >> ((e & 1u) << 4u)).x;
}
fn v_at(e: u32) -> f32 {
    return unpack2x16float(vc[e >> 1u] >> ((e & 1u) << 4u)).x;
}
// Elements e..e+3 (e % 4 == 0: two whole words each).
fn k4(e: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(kc[e >> 1u]), unpack2x16float(kc[(e >> 1u) + 1u]));
}
fn v4(e: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(vc[e >> 1u]), unpack2x16float(vc[(e >> 1u) + 1u]));
}
#elif KV_VEC4
// f32 cache, d % 4 == 0: keys (and attn_one's values) read 4 dims per load.
#if NEW_KV
@group(0) @binding(2) var<storage, read_write> kc: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> kc: array<vec4<f32>>;
#endif
#if NEW_KV
@group(0) @binding(3) var<storage, read_write> vc: array<vec4<f32>>;
#else
@group(0) @binding(3) var<storage, read> vc: array<vec4<f32>>;
#endif
fn v_at(e: u32) -> f32 {
    return vc[e >> 2u][e & 3u];
}
fn k4(e: u32) -> vec4<f32> {
    return kc[e >> 2u];
}
fn v4(e: u32) -> vec4<f32> {
    return vc[e >> 2u];
}
#else
#if NEW_KV
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
#else
@group(0) @binding(2) var<storage, read> kc: array<f32>;
#endif
#if NEW_KV
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;
#else
@group(0) @binding(3) var<storage, read> vc: array<f32>;
#endif
fn k_at(e: u32) -> f32 {
    return kc[e];
}
fn v_at(e: u32) -> f32 {
    return vc[e];
}
#endif
@group(0) @binding(4) var<storage, read> syms: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
#if ROPE_Q
@group(0) @binding(6) var<storage, read> factors: array<f32>;
#include "common/trig.wgsl"
#include "common/rope.wgsl"
fn rope_x(i: u32) -> f32 {
    return q[i];
}
#endif
#endif
