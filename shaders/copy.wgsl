// copy.wgsl — data movement (ops/copy.rs). One entry per define set:
//
// STRIDED (+ SRC_F16 | SRC_BF16): y[dst_off + Σ i_k·ds_k] = x[src_off + Σ i_k·ss_k]
//   over a 4-D region `dims`; source f32 (or half/bfloat16 widened), dest f32.
//   Used by copy/cast-to-f32, transpose and concat.
//   Bindings: 0 params, 1 x, 2 y.  One thread per element (per 4 along the
//   innermost dimension with VEC4; as one vector with ALIGNED, f32 sources
//   whose offsets and strides are multiples of 4).
// TO_HALF (+ BF16): contiguous f32 → f16 (or bf16, round to nearest even),
//   one thread per output u32 (two halves). Bindings: 0 params, 1 x, 2 y.
// CACHE (+ DST_F16): dst[h, pos+t, :] = src[t, h, :] into a [hkv, cap, d]
//   state tensor, pos = syms[pos_sym]. Bindings: 0 params, 1 src, 2 dst
//   (in place), 3 syms. One thread per element (per pair for f16).
// Dispatch: 256 threads per workgroup, folded by ops::grid.

@group(0) @binding(0) var<uniform> p: Params;

#if STRIDED
struct Params {
    n: u32,
    dims: vec4<u32>,
    ss: vec4<u32>,
    ds: vec4<u32>,
    src_off: u32,
    dst_off: u32,
}
#if SRC_F16
@group(0) @binding(1) var<storage, read> x: array<u32>;
fn x_at(e: u32) -> f32 {
    return unpack2x16float(x[e >> 1u] >> ((e & 1u) << 4u)).x;
}
#elif SRC_BF16
@group(0) @binding(1) var<storage, read> x: array<u32>;
fn x_at(e: u32) -> f32 {
    return bitcast<f32>(((x[e >> 1u] >> ((e & 1u) << 4u)) & 0xffffu) << 16u);
}
#elif ALIGNED
// VEC4 with every offset and stride a multiple of 4: whole vectors.
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
fn x_at(e: u32) -> f32 {
    return x[e];
}
#endif
#if ALIGNED
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif

// With VEC4 (dims.w % 4 == 0, unit innermost strides: concat, contiguous
// copies) an invocation copies 4 consecutive elements, loading all four
// before storing any (y might alias x as far as the compiler knows).
#if VEC4
const PER: u32 = 4u;
#else
const PER: u32 = 1u;
#endif

@compute @workgroup_size(256)
fn strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = ((wid.x + wid.y * nwg.x) * 256u + lid) * PER;
    if (e >= p.n) {
        return;
    }
    let i3 = e % p.dims.w;
    let i2 = (e / p.dims.w) % p.dims.z;
    let i1 = (e / (p.dims.w * p.dims.z)) % p.dims.y;
    let i0 = e / (p.dims.w * p.dims.z * p.dims.y);
    let idx = vec4<u32>(i0, i1, i2, i3);
    let s = p.src_off + dot(idx, p.ss);
    let d = p.dst_off + dot(idx, p.ds);
#if ALIGNED
    y[d / 4u] = x[s / 4u];
#elif VEC4
    let v = vec4<f32>(x_at(s), x_at(s + 1u), x_at(s + 2u), x_at(s + 3u));
    y[d] = v.x;
    y[d + 1u] = v.y;
    y[d + 2u] = v.z;
    y[d + 3u] = v.w;
#else
    y[d] = x_at(s);
#endif
}
#endif

#if TO_HALF
struct Params {
    n: u32,
}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

fn half_bits(v: f32) -> u32 {
#if BF16
    let b = bitcast<u32>(v);
    return ((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u) & 0xffffu;
#else
    return pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu;
#endif
}

@compute @workgroup_size(256)
fn to_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let w = (wid.x + wid.y * nwg.x) * 256u + lid;
    let e = 2u * w;
    if (e >= p.n) {
        return;
    }
    var hi = 0u;
    if (e + 1u < p.n) {
        hi = half_bits(x[e + 1u]);
    }
    y[w] = half_bits(x[e]) | (hi << 16u);
}
#endif

#if CACHE
struct Params {
    t: u32,
    h: u32,
    d: u32,
    cap: u32,
    pos_sym: u32,
    col0: u32,  // src: first column of head 0 in each row (0 unless a window)
    ld: u32,    // src: values per row (h·d unless a window)
}
@group(0) @binding(1) var<storage, read> src: array<f32>;
#if DST_F16
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
#else
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
#endif
@group(0) @binding(3) var<storage, read> syms: array<u32>;

@compute @workgroup_size(256)
fn write_cache(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
#if DST_F16
    let e = 2u * i;
#else
    let e = i;
#endif
    if (e >= p.t * p.h * p.d) {
        return;
    }
    let c = e % p.d;
    let h = (e / p.d) % p.h;
    let ti = e / (p.d * p.h);
    let o = (h * p.cap + syms[p.pos_sym] + ti) * p.d + c;
    let se = ti * p.ld + p.col0 + h * p.d + c;
#if DST_F16
    dst[o >> 1u] = pack2x16float(vec2<f32>(src[se], src[se + 1u]));
#else
    dst[o] = src[se];
#endif
}
#endif
