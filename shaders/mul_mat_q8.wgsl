// mul_mat_q8.wgsl — the decode GEMV (m = 1) with 8-bit activations
// (ops/matmul_q8.rs): x is quantized once per product, then every weight
// row's dot product runs on 4-wide integer dot products (dot4I8Packed) —
// what llama.cpp's GPU backends do by default. Opt-in (`KILN_ACTIVATIONS=q8`):
// the f32 kernels stay the default, faithful path.
//
// Two entries, one dispatch each:
// * QUANTIZE, entry `quantize`: per block u of 32 values of v = x (⊙ nw when
//   has_norm): d = max|v|/127, q = round(v/d) (half away from zero), written
//   to the scratch xq (u32 words, nb = k/32 blocks): q packed four per word
//   in [0, k/4), then d, s = d·Σq and ss = Σx² (the raw x, for RMSNorm)
//   per block at k/4 + u, k/4 + nb + u, k/4 + 2nb + u. One invocation per
//   block.
// * `gemv` (SUBGROUPS): y[n0 + c] = f(inv · Σ_blocks d_w·d_x·Σ q_w·q_x) (+ res),
//   inv = 1/sqrt(Σss/k + eps) with has_norm, else 1; with glu (SwiGLU) gate
//   row c and up row cols + c give silu(a)·b. A workgroup owns rows_per_wg
//   output columns, one subgroup per column at a time; lanes stride over
//   half-blocks (16 weights) and reduce with subgroupAdd.
// Params: k, cols (output columns of this dispatch), n0 (first output
// column; the weight binding starts at that row), has_res, has_norm, eps,
// glu, rows_per_wg.
// Bindings (QUANTIZE): 0 params, 1 x [k] as vec4, 2 nw [k] as vec4 (x when
// unused), 3 xq (scratch, written). (gemv): 0 params, 1 W, 2 xq, 3 y, 4 res.

struct Params {
    k: u32,
    cols: u32,
    n0: u32,
    has_res: u32,
    has_norm: u32,
    eps: f32,
    glu: u32,
    rows_per_wg: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

#if QUANTIZE
@group(0) @binding(1) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> nwv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> xq: array<u32>;

@compute @workgroup_size(64)
fn quantize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let u = (wid.x + wid.y * nwg.x) * 64u + lid;
    let nb = p.k >> 5u;
    if (u >= nb) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    var amax = 0.0;
    var ss = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let a = xv[8u * u + i];
        ss += dot(a, a);
        var b = a;
        if (p.has_norm != 0u) {
            b = a * nwv[8u * u + i];
        }
        v[i] = b;
        let m = abs(b);
        amax = max(amax, max(max(m.x, m.y), max(m.z, m.w)));
    }
    let d = amax / 127.0;
    let id = select(0.0, 1.0 / d, d > 0.0);
    var sum = 0;
    for (var i = 0u; i < 8u; i++) {
        let t = v[i] * id;
        let r = vec4<i32>(sign(t) * floor(abs(t) + vec4<f32>(0.5)));
        sum += (r.x + r.y) + (r.z + r.w);
        xq[8u * u + i] = pack4xI8(r);
    }
    let o = p.k >> 2u;
    xq[o + u] = bitcast<u32>(d);
    xq[o + nb + u] = bitcast<u32>(d * f32(sum));
    xq[o + 2u * nb + u] = bitcast<u32>(ss);
}
#else
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;

#include "quant/bytes.wgsl"

fn xd(u: u32) -> f32 {
    return bitcast<f32>(xq[(p.k >> 2u) + u]);
}

// The four nibbles of q's bytes (shift 0: low, 4: high) minus 8, as signed
// bytes: (b + 0x78) ^ 0x80 is b − 8 in two's complement for b < 16, and
// no byte carries into the next.
fn nib_s8(q: u32, shift: u32) -> u32 {
    return (((q >> shift) & 0x0f0f0f0fu) + 0x78787878u) ^ 0x80808080u;
}

#if W_Q4_0
// block_q4_0 (18 bytes): d f16, 16 quant bytes. Half h: bytes 8h..8h+7 hold
// elements 8h..8h+7 (low nibbles) and 16+8h.. (high), x words 2h, 2h+1 and
// 4+2h, 5+2h of the block.
fn half_dot(row: u32, hb: u32) -> f32 {
    let u = hb >> 1u;
    let h = hb & 1u;
    let off = (row * (p.k >> 5u) + u) * 18u;
    let q0 = b32(off + 2u + 8u * h);
    let q1 = b32(off + 6u + 8u * h);
    let xo = 8u * u + 2u * h;
    let si = (dot4I8Packed(nib_s8(q0, 0u), xq[xo]) + dot4I8Packed(nib_s8(q1, 0u), xq[xo + 1u]))
        + (dot4I8Packed(nib_s8(q0, 4u), xq[xo + 4u]) + dot4I8Packed(nib_s8(q1, 4u), xq[xo + 5u]));
    return f16at(off) * xd(u) * f32(si);
}
#elif W_Q4_1
// block_q4_1 (20 bytes, 4-aligned): d f16, m f16, 16 quant bytes; w = d·q + m,
// so the block adds d_w·d_x·Σq_w·q_x + m·(d_x·Σq_x) — the second term once,
// from half 0.
fn half_dot(row: u32, hb: u32) -> f32 {
    let u = hb >> 1u;
    let h = hb & 1u;
    let o = (row * (p.k >> 5u) + u) * 5u;
    let dm = unpack2x16float(W[o]);
    let q0 = W[o + 1u + 2u * h];
    let q1 = W[o + 2u + 2u * h];
    let xo = 8u * u + 2u * h;
    let m4 = 0x0f0f0f0fu;
    let si = (dot4I8Packed(q0 & m4, xq[xo]) + dot4I8Packed(q1 & m4, xq[xo + 1u]))
        + (dot4I8Packed((q0 >> 4u) & m4, xq[xo + 4u]) + dot4I8Packed((q1 >> 4u) & m4, xq[xo + 5u]));
    let sm = select(0.0, dm.y * bitcast<f32>(xq[(p.k >> 2u) + (p.k >> 5u) + u]), h == 0u);
    return dm.x * xd(u) * f32(si) + sm;
}
#elif W_Q8_0
// block_q8_0 (34 bytes): d f16, 32 signed quant bytes; half h is elements
// 16h..16h+15, x words 4h..4h+3 of the block.
fn half_dot(row: u32, hb: u32) -> f32 {
    let u = hb >> 1u;
    let h = hb & 1u;
    let off = (row * (p.k >> 5u) + u) * 34u;
    let qo = off + 2u + 16u * h;
    let xo = 8u * u + 4u * h;
    let si = (dot4I8Packed(b32(qo), xq[xo]) + dot4I8Packed(b32(qo + 4u), xq[xo + 1u]))
        + (dot4I8Packed(b32(qo + 8u), xq[xo + 2u]) + dot4I8Packed(b32(qo + 12u), xq[xo + 3u]));
    return f16at(off) * xd(u) * f32(si);
}
#endif

@compute @workgroup_size(64)
fn gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sgs = subgroupAdd(1u);
    let sg = lid / sgs;
    let lane = lid % sgs;
    let c0 = (wid.x + wid.y * nwg.x) * p.rows_per_wg;
    let nb = p.k >> 5u;
    var inv = 1.0;
    if (p.has_norm != 0u) {
        var s = 0.0;
        for (var u = lane; u < nb; u += sgs) {
            s += bitcast<f32>(xq[(p.k >> 2u) + 2u * nb + u]);
        }
        inv = 1.0 / sqrt(subgroupAdd(s) / f32(p.k) + p.eps);
    }
    let nh = 2u * nb;
    for (var cc = sg; cc < p.rows_per_wg; cc += 64u / sgs) {
        let c = c0 + cc;
        if (c >= p.cols) {
            break;
        }
        var a = 0.0;
        var b = 0.0;
        if (p.glu != 0u) {
            for (var hb = lane; hb < nh; hb += sgs) {
                a += half_dot(c, hb);
                b += half_dot(p.cols + c, hb);
            }
        } else {
            for (var hb = lane; hb < nh; hb += sgs) {
                a += half_dot(c, hb);
            }
        }
        let sa = subgroupAdd(a) * inv;
        let sb = subgroupAdd(b) * inv;
        if (lane == 0u) {
            var v = sa;
            if (p.glu != 0u) {
                v = sa / (1.0 + exp(-sa)) * sb;
            }
            let i = p.n0 + c;
            if (p.has_res != 0u) {
                v += res[i];
            }
            y[i] = v;
        }
    }
}
#endif
