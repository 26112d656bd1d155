// mul_mat_q8.wgsl — matrix products with 8-bit activations
// (ops/matmul_q8.rs): x is quantized once per product, then every dot
// product runs on 4-wide integer dot products (dot4I8Packed) — what
// llama.cpp's GPU backends do by default. Opt-in (`KILN_ACTIVATIONS=q8`):
// the f32 kernels stay the default, faithful path.
//
// Three entries, one dispatch each:
// * QUANTIZE, entry `quantize`: per block u (of m·nb, nb = k/32 per row) of
//   32 values of v = x (⊙ nw when has_norm): d = max|v|/127, q = round(v/d)
//   (half away from zero), written to the scratch xq (u32 words): q packed
//   four per word at 8u.. (row-major, as x), then d, s = d·Σq and ss = Σx²
//   (the raw x, for RMSNorm) per block at B + u, B + m·nb + u,
//   B + 2·m·nb + u, B = m·k/4. One invocation per block.
// * `gemv` (needs SUBGROUPS): y[n0 + c] = f(inv · Σ_blocks d_w·d_x·Σ q_w·q_x) (+ res),
//   inv = 1/sqrt(Σss/k + eps) with has_norm, else 1; with glu (SwiGLU) gate
//   row c and up row cols + c give silu(a)·b. A workgroup owns rows_per_wg
//   output columns, one subgroup per column at a time; lanes stride over
//   half-blocks (16 weights) and reduce with subgroupAdd. m = 1. With
//   XQ_LOCAL (k ≤ KMAX) there is no QUANTIZE dispatch: each workgroup of
//   256 quantizes x into workgroup memory first (the same blocks), so a
//   decode product is one dispatch, not two.
//   Variants (benchmarks pick; the same arithmetic): XQ_SPREAD quantizes x
//   four invocations per block (8 values each, the block's max, Σq and Σx²
//   over the quad by subgroup shuffles) instead of one invocation per block;
//   WBLOCK (Q4_0, Q4_1) gives each lane whole blocks, read as five aligned
//   words, two blocks in flight per lane, instead of half-blocks.
// * `gemm` (prefill, m rows): y[r, n0 + c] = Σ_blocks d_x·d_w·Σ q_x·q_w
//   (+ m_w·s_x for Q4_1) (+ res). Workgroups of 256 own a 128 × 64 tile
//   (rows of x × weight rows), 8 × 4 outputs per invocation; K advances
//   two 32-blocks per stage through workgroup memory (x words and weight
//   words decoded to signed bytes, transposed so an invocation's 8 rows /
//   4 columns of one word are two / one vec4 loads), the next stage's
//   global loads issued before the current stage's products.
// Params: k, cols (output columns of this dispatch), n0 (first output
// column; the weight binding starts at that row), has_res, has_norm, eps,
// glu, rows_per_wg, m, n (y's row stride).
// Bindings (QUANTIZE): 0 params, 1 x [m, k] as vec4, 2 nw [k] as vec4 (x
// when unused), 3 xq (scratch, written). (gemv, gemm): 0 params, 1 W (rows
// from n0), 2 xq, 3 y [m, n], 4 res [m, n] (x when has_res = 0); with
// XQ_LOCAL 2 is x [k] as vec4 and 5 nw [k] (x when unused).

struct Params {
    k: u32,
    cols: u32,
    n0: u32,
    has_res: u32,
    has_norm: u32,
    eps: f32,
    glu: u32,
    rows_per_wg: u32,
    m: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

#if QUANTIZE
@group(0) @binding(1) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> nwv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> xq: array<u32>;
#define XV
#else
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
#if XQ_LOCAL
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> nwv: array<vec4<f32>>;
#define XV
#else
@group(0) @binding(2) var<storage, read> xq: array<u32>;
#endif
#endif

#if XV
// Block u (of 32 values, row-major over x) quantized: q packed four per
// word, d, s = d·Σq and ss = Σx² of the raw x.
struct QBlock {
    q: array<u32, 8>,
    d: f32,
    s: f32,
    ss: f32,
}

// round(t), ties away from zero (floor(|t| + 0.5) would round 0.5 − 2⁻²⁵
// up).
fn round_away(t: vec4<f32>) -> vec4<i32> {
    let a = abs(t);
    let fl = floor(a);
    return vec4<i32>(sign(t) * (fl + select(vec4<f32>(0.0), vec4<f32>(1.0), a - fl >= vec4<f32>(0.5))));
}

fn quant_block(u: u32) -> QBlock {
    let nu = 8u * (u % (p.k >> 5u));
    var v: array<vec4<f32>, 8>;
    var amax = 0.0;
    var ss = 0.0;
    // Any NaN or infinity in the block makes its d NaN, so the products
    // come out NaN as the f32 path's would (max() would skip a NaN).
    var finite = true;
    for (var i = 0u; i < 8u; i++) {
        let a = xv[8u * u + i];
        ss += dot(a, a);
        var b = a;
        if (p.has_norm != 0u) {
            b = a * nwv[nu + i];
        }
        v[i] = b;
        let m = abs(b);
        finite = finite && all(m <= vec4<f32>(3.4028235e38));
        amax = max(amax, max(max(m.x, m.y), max(m.z, m.w)));
    }
    var o: QBlock;
    o.d = select(bitcast<f32>(0x7fc00000u), amax / 127.0, finite);
    let id = select(0.0, 1.0 / o.d, o.d > 0.0);
    var sum = 0;
    for (var i = 0u; i < 8u; i++) {
        let r = round_away(v[i] * id);
        sum += (r.x + r.y) + (r.z + r.w);
        o.q[i] = pack4xI8(r);
    }
    o.s = o.d * f32(sum);
    o.ss = ss;
    return o;
}
#endif

#if QUANTIZE
@compute @workgroup_size(64)
fn quantize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let u = (wid.x + wid.y * nwg.x) * 64u + lid;
    let nt = p.m * (p.k >> 5u);
    if (u >= nt) {
        return;
    }
    let b = quant_block(u);
    for (var i = 0u; i < 8u; i++) {
        xq[8u * u + i] = b.q[i];
    }
    let o = p.m * (p.k >> 2u);
    xq[o + u] = bitcast<u32>(b.d);
    xq[o + nt + u] = bitcast<u32>(b.s);
    xq[o + 2u * nt + u] = bitcast<u32>(b.ss);
}
#else
#if XQ_LOCAL
// The one-token GEMV quantizes x itself, into workgroup memory (k ≤ KMAX).
const KMAX: u32 = 8192u;
var<workgroup> Lq: array<u32, KMAX / 4u>;
var<workgroup> Ld: array<f32, KMAX / 32u>;
var<workgroup> Ls: array<f32, KMAX / 32u>;
var<workgroup> Lss: array<f32, KMAX / 32u>;

fn xw(i: u32) -> u32 {
    return Lq[i];
}
fn xd(u: u32) -> f32 {
    return Ld[u];
}
fn xsum(u: u32) -> f32 {
    return Ls[u];
}
fn xss(u: u32) -> f32 {
    return Lss[u];
}

#if XQ_SPREAD
// x (m = 1) into Lq/Ld/Ls/Lss, four invocations per 32-block (values
// 8·part .. 8·part + 7, x words 2·part, 2·part + 1 of the block): the
// quad's max |v|, finiteness, Σx² and Σq by subgroup shuffles (quads never
// straddle a subgroup). Same d, q and s as quant_block; Σx² is summed in
// another order. Uniform control flow (the shuffles).
fn quantize_spread(lid: u32) {
    let nb = p.k >> 5u;
    let n4 = 4u * nb;
    for (var i0 = 0u; i0 < n4; i0 += WG) {
        let idx = i0 + lid;
        let live = idx < n4;
        let e = 2u * min(idx, n4 - 1u);
        let u = e >> 3u;
        let xa = xv[e];
        let xb = xv[e + 1u];
        var va = xa;
        var vb = xb;
        if (p.has_norm != 0u) {
            va = xa * nwv[e];
            vb = xb * nwv[e + 1u];
        }
        let ma = abs(va);
        let mb = abs(vb);
        let big = vec4<f32>(3.4028235e38);
        var fin = select(0u, 1u, all(ma <= big) && all(mb <= big));
        let m4 = max(ma, mb);
        var amax = max(max(m4.x, m4.y), max(m4.z, m4.w));
        var ss = dot(xa, xa) + dot(xb, xb);
        amax = max(amax, subgroupShuffleXor(amax, 1u));
        amax = max(amax, subgroupShuffleXor(amax, 2u));
        fin = fin & subgroupShuffleXor(fin, 1u);
        fin = fin & subgroupShuffleXor(fin, 2u);
        ss += subgroupShuffleXor(ss, 1u);
        ss += subgroupShuffleXor(ss, 2u);
        let d = select(bitcast<f32>(0x7fc00000u), amax / 127.0, fin == 1u);
        let id = select(0.0, 1.0 / d, d > 0.0);
        let ra = round_away(va * id);
        let rb = round_away(vb * id);
        var sum = ((ra.x + ra.y) + (ra.z + ra.w)) + ((rb.x + rb.y) + (rb.z + rb.w));
        sum += subgroupShuffleXor(sum, 1u);
        sum += subgroupShuffleXor(sum, 2u);
        if (live) {
            Lq[e] = pack4xI8(ra);
            Lq[e + 1u] = pack4xI8(rb);
            if ((idx & 3u) == 0u) {
                Ld[u] = d;
                Ls[u] = d * f32(sum);
                Lss[u] = ss;
            }
        }
    }
}
#endif
#else
// Scratch layout of one row (m = 1 in the GEMV; the GEMM reads xq itself).
fn xw(i: u32) -> u32 {
    return xq[i];
}
fn xd(u: u32) -> f32 {
    return bitcast<f32>(xq[(p.k >> 2u) + u]);
}
fn xsum(u: u32) -> f32 {
    return bitcast<f32>(xq[(p.k >> 2u) + (p.k >> 5u) + u]);
}
fn xss(u: u32) -> f32 {
    return bitcast<f32>(xq[(p.k >> 2u) + 2u * (p.k >> 5u) + u]);
}
#endif

#include "quant/bytes.wgsl"

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
    let si = (dot4I8Packed(nib_s8(q0, 0u), xw(xo)) + dot4I8Packed(nib_s8(q1, 0u), xw(xo + 1u)))
        + (dot4I8Packed(nib_s8(q0, 4u), xw(xo + 4u)) + dot4I8Packed(nib_s8(q1, 4u), xw(xo + 5u)));
    return f16at(off) * xd(u) * f32(si);
}

#if WBLOCK
// The whole block u of row `row` from five aligned words (span_word): d, then
// quant words j = 0..3, whose low nibbles meet x word j and high ones x word
// 4 + j of the block.
fn block_dot(row: u32, u: u32) -> f32 {
    let off = (row * (p.k >> 5u) + u) * 18u;
    let o = off >> 2u;
    let mid = (off & 2u) != 0u;
    let w = array<u32, 5>(W[o], W[o + 1u], W[o + 2u], W[o + 3u], W[o + 4u]);
    let xo = 8u * u;
    var si = 0;
    for (var j = 0u; j < 4u; j++) {
        let q = span_word(w[j], w[j + 1u], mid);
        si += dot4I8Packed(nib_s8(q, 0u), xw(xo + j)) + dot4I8Packed(nib_s8(q, 4u), xw(xo + 4u + j));
    }
    let d = unpack2x16float(select(w[0] & 0xffffu, w[0] >> 16u, mid)).x;
    return d * xd(u) * f32(si);
}
#endif
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
    let si = (dot4I8Packed(q0 & m4, xw(xo)) + dot4I8Packed(q1 & m4, xw(xo + 1u)))
        + (dot4I8Packed((q0 >> 4u) & m4, xw(xo + 4u)) + dot4I8Packed((q1 >> 4u) & m4, xw(xo + 5u)));
    let sm = select(0.0, dm.y * xsum(u), h == 0u);
    return dm.x * xd(u) * f32(si) + sm;
}

#if WBLOCK
// The whole block u of row `row` (five aligned words: d and m, 16 quant
// bytes whose low nibbles meet x word j and high ones x word 4 + j).
fn block_dot(row: u32, u: u32) -> f32 {
    let o = (row * (p.k >> 5u) + u) * 5u;
    let dm = unpack2x16float(W[o]);
    let xo = 8u * u;
    let m4 = 0x0f0f0f0fu;
    var si = 0;
    for (var j = 0u; j < 4u; j++) {
        let q = W[o + 1u + j];
        si += dot4I8Packed(q & m4, xw(xo + j)) + dot4I8Packed((q >> 4u) & m4, xw(xo + 4u + j));
    }
    return dm.x * xd(u) * f32(si) + dm.y * xsum(u);
}
#endif
#elif W_Q8_0
// block_q8_0 (34 bytes): d f16, 32 signed quant bytes; half h is elements
// 16h..16h+15, x words 4h..4h+3 of the block.
fn half_dot(row: u32, hb: u32) -> f32 {
    let u = hb >> 1u;
    let h = hb & 1u;
    let off = (row * (p.k >> 5u) + u) * 34u;
    let qo = off + 2u + 16u * h;
    let xo = 8u * u + 4u * h;
    let si = (dot4I8Packed(b32(qo), xw(xo)) + dot4I8Packed(b32(qo + 4u), xw(xo + 1u)))
        + (dot4I8Packed(b32(qo + 8u), xw(xo + 2u)) + dot4I8Packed(b32(qo + 12u), xw(xo + 3u)));
    return f16at(off) * xd(u) * f32(si);
}
#endif

#if SUBGROUPS
#if XQ_LOCAL
const WG: u32 = 256u;
@compute @workgroup_size(256)
#else
const WG: u32 = 64u;
@compute @workgroup_size(64)
#endif
fn gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sgs = subgroupAdd(1u);
    let sg = lid / sgs;
    let lane = lid % sgs;
    let c0 = (wid.x + wid.y * nwg.x) * p.rows_per_wg;
    let nb = p.k >> 5u;
#if XQ_LOCAL
#if XQ_SPREAD
    quantize_spread(lid);
#else
    for (var u = lid; u < nb; u += WG) {
        let b = quant_block(u);
        for (var i = 0u; i < 8u; i++) {
            Lq[8u * u + i] = b.q[i];
        }
        Ld[u] = b.d;
        Ls[u] = b.s;
        Lss[u] = b.ss;
    }
#endif
    workgroupBarrier();
#endif
    var inv = 1.0;
    if (p.has_norm != 0u) {
        var s = 0.0;
        for (var u = lane; u < nb; u += sgs) {
            s += xss(u);
        }
        inv = 1.0 / sqrt(subgroupAdd(s) / f32(p.k) + p.eps);
    }
    let nh = 2u * nb;
    for (var cc = sg; cc < p.rows_per_wg; cc += WG / sgs) {
        let c = c0 + cc;
        if (c >= p.cols) {
            break;
        }
        var a = 0.0;
        var b = 0.0;
#if WBLOCK
        // Two blocks per lane in flight, then the odd one.
        var u = lane;
        if (p.glu != 0u) {
            for (; u + sgs < nb; u += 2u * sgs) {
                a += block_dot(c, u) + block_dot(c, u + sgs);
                b += block_dot(p.cols + c, u) + block_dot(p.cols + c, u + sgs);
            }
            if (u < nb) {
                a += block_dot(c, u);
                b += block_dot(p.cols + c, u);
            }
        } else {
            for (; u + sgs < nb; u += 2u * sgs) {
                a += block_dot(c, u) + block_dot(c, u + sgs);
            }
            if (u < nb) {
                a += block_dot(c, u);
            }
        }
#else
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
#endif
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

#if !XQ_LOCAL
// ---- gemm (prefill)
const BM: u32 = 128u;
const BN: u32 = 64u;
// 32-blocks per stage (one barrier pair per stage).
const KB: u32 = 2u;
// [block][word][row / 4] and [block][word][column / 4] of the current stage.
var<workgroup> Xs: array<vec4<u32>, KB * 8u * BM / 4u>;
var<workgroup> Ws: array<vec4<u32>, KB * 8u * BN / 4u>;
var<workgroup> Xd: array<vec4<f32>, KB * BM / 4u>;
var<workgroup> Xsum: array<vec4<f32>, KB * BM / 4u>;
var<workgroup> Wd: array<vec4<f32>, KB * BN / 4u>;
var<workgroup> Wm: array<vec4<f32>, KB * BN / 4u>;

// What one invocation fetches from global memory for one block of a stage:
// 4 x words (half xh of row xr), that row's d and s (invocations < BM), and
// its part of weight row wc (raw words, decoded when stored).
struct Fetch {
    x: vec4<u32>,
    ds: vec2<f32>,
    w: vec4<u32>,
}

// The raw words of part j (0..3) of block u of weight row `row`: Q4_0 /
// Q4_1 (x: 4 quant bytes, y: d / d and m), Q8_0 (x, y: 8 quant bytes, z: d).
fn fetch_w(row: u32, u: u32, j: u32) -> vec4<u32> {
    let nb = p.k >> 5u;
#if W_Q4_0
    let off = (row * nb + u) * 18u;
    return vec4<u32>(b32(off + 2u + 4u * j), b16(off), 0u, 0u);
#elif W_Q4_1
    let o = (row * nb + u) * 5u;
    return vec4<u32>(W[o + 1u + j], W[o], 0u, 0u);
#elif W_Q8_0
    let off = (row * nb + u) * 34u;
    return vec4<u32>(b32(off + 2u + 8u * j), b32(off + 6u + 8u * j), b16(off), 0u);
#else
    return vec4<u32>(0u);
#endif
}

// This invocation's loads for block u (zeros past the edges): x words from
// xbase + 8u, the row's d and s from dbase + u (s m·nb words later), part
// wj of weight row `row`; `ins` says which of the three are inside.
fn fetch(u: u32, xbase: u32, dbase: u32, row: u32, wj: u32, ins: vec3<bool>) -> Fetch {
    var f = Fetch(vec4<u32>(0u), vec2<f32>(0.0), vec4<u32>(0u));
    if (u < (p.k >> 5u)) {
        if (ins.x) {
            let o = xbase + 8u * u;
            f.x = vec4<u32>(xq[o], xq[o + 1u], xq[o + 2u], xq[o + 3u]);
        }
        if (ins.y) {
            f.ds = vec2<f32>(bitcast<f32>(xq[dbase + u]),
                             bitcast<f32>(xq[dbase + p.m * (p.k >> 5u) + u]));
        }
        if (ins.z) {
            f.w = fetch_w(row, u, wj);
        }
    }
    return f;
}

fn put_w(b: u32, j: u32, col: u32, v: u32) {
    Ws[(b * 8u + j) * (BN / 4u) + col / 4u][col % 4u] = v;
}

// A fetched weight part as signed-byte words, part 0 also the scales.
fn store_w(b: u32, j: u32, col: u32, r: vec4<u32>) {
    let c = b * (BN / 4u) + col / 4u;
#if W_Q4_0
    put_w(b, j, col, nib_s8(r.x, 0u));
    put_w(b, 4u + j, col, nib_s8(r.x, 4u));
    if (j == 0u) {
        Wd[c][col % 4u] = unpack2x16float(r.y).x;
    }
#elif W_Q4_1
    put_w(b, j, col, r.x & 0x0f0f0f0fu);
    put_w(b, 4u + j, col, (r.x >> 4u) & 0x0f0f0f0fu);
    if (j == 0u) {
        let dm = unpack2x16float(r.y);
        Wd[c][col % 4u] = dm.x;
        Wm[c][col % 4u] = dm.y;
    }
#elif W_Q8_0
    put_w(b, 2u * j, col, r.x);
    put_w(b, 2u * j + 1u, col, r.y);
    if (j == 0u) {
        Wd[c][col % 4u] = unpack2x16float(r.z).x;
    }
#endif
}

@compute @workgroup_size(256)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = lid % 16u;
    let ty = lid / 16u;
    let c0 = wid.x * BN;
    let r0 = wid.y * BM;
    let nb = p.k >> 5u;
    let kw = p.k >> 2u;
    let db = p.m * kw;
    // This invocation's loads: half lid % 2 (4 words) of x row lid / 2, and
    // part lid % 4 of weight row lid / 4.
    let xr = lid / 2u;
    let xh = lid % 2u;
    let wc = lid / 4u;
    let wj = lid % 4u;
    let x_in = r0 + xr < p.m;
    let d_in = lid < BM && r0 + lid < p.m;
    let w_in = c0 + wc < p.cols;
    var acc: array<vec4<f32>, 8>;
    var f: array<Fetch, KB>;
    // The stage's global loads go out before the previous stage's products
    // (registers, then workgroup memory after the barrier).
    let xbase = (r0 + xr) * kw + 4u * xh;
    let dbase = db + (r0 + lid) * nb;
    for (var b = 0u; b < KB; b++) {
        f[b] = fetch(b, xbase, dbase, c0 + wc, wj, vec3<bool>(x_in, d_in, w_in));
    }
    for (var u0 = 0u; u0 < nb; u0 += KB) {
        for (var b = 0u; b < KB; b++) {
            for (var i = 0u; i < 4u; i++) {
                Xs[(b * 8u + 4u * xh + i) * (BM / 4u) + xr / 4u][xr % 4u] = f[b].x[i];
            }
            if (lid < BM) {
                Xd[b * (BM / 4u) + lid / 4u][lid % 4u] = f[b].ds.x;
                Xsum[b * (BM / 4u) + lid / 4u][lid % 4u] = f[b].ds.y;
            }
            store_w(b, wj, wc, f[b].w);
        }
        workgroupBarrier();
        for (var b = 0u; b < KB; b++) {
            f[b] = fetch(u0 + KB + b, xbase, dbase, c0 + wc, wj, vec3<bool>(x_in, d_in, w_in));
        }
        for (var b = 0u; b < KB; b++) {
            var isum: array<vec4<i32>, 8>;
            for (var w = 0u; w < 8u; w++) {
                let xo = (b * 8u + w) * (BM / 4u) + 2u * ty;
                let xa = Xs[xo];
                let xb = Xs[xo + 1u];
                let wv = Ws[(b * 8u + w) * (BN / 4u) + tx];
                for (var i = 0u; i < 4u; i++) {
                    isum[i] += vec4<i32>(dot4I8Packed(xa[i], wv.x), dot4I8Packed(xa[i], wv.y),
                                         dot4I8Packed(xa[i], wv.z), dot4I8Packed(xa[i], wv.w));
                    isum[4u + i] += vec4<i32>(dot4I8Packed(xb[i], wv.x), dot4I8Packed(xb[i], wv.y),
                                              dot4I8Packed(xb[i], wv.z), dot4I8Packed(xb[i], wv.w));
                }
            }
            let dxa = Xd[b * (BM / 4u) + 2u * ty];
            let dxb = Xd[b * (BM / 4u) + 2u * ty + 1u];
            let dw = Wd[b * (BN / 4u) + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i] += vec4<f32>(isum[i]) * (dxa[i] * dw);
                acc[4u + i] += vec4<f32>(isum[4u + i]) * (dxb[i] * dw);
            }
#if W_Q4_1
            let sxa = Xsum[b * (BM / 4u) + 2u * ty];
            let sxb = Xsum[b * (BM / 4u) + 2u * ty + 1u];
            let wm = Wm[b * (BN / 4u) + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i] += wm * sxa[i];
                acc[4u + i] += wm * sxb[i];
            }
#endif
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 8u; i++) {
        let r = r0 + 8u * ty + i;
        if (r >= p.m) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let c = c0 + 4u * tx + j;
            if (c < p.cols) {
                let o = r * p.n + p.n0 + c;
                var v = acc[i][j];
                if (p.has_res != 0u) {
                    v += res[o];
                }
                y[o] = v;
            }
        }
    }
}
#endif
#endif
