// mul_mat_coop_half.wgsl — the tensor-core prefill product y[m, n] = x · Wᵀ
// (+ res) from f16 copies of its operands (ops/matmul_q8.rs, `coop_half`;
// with 8-bit activations where the adapter offers cooperative matrices;
// `KILN_COOP=0` turns it off): a `to_half` pass writes x, and each weight
// chunk dequantized, as packed f16 rows; `gemm` then stages 16-byte words of
// both into workgroup memory as they are (no decoding, no conversion while
// staging: the cost that bound mul_mat_coop.wgsl's kernel on an H100) and
// multiplies 16×16×16 f16 fragments into f32 accumulators on the
// cooperative matrices (Vulkan's VK_KHR_cooperative_matrix, 32-wide
// subgroups). Rounding as mul_mat_coop.wgsl: each operand to f16 (values
// clamped to ±65,504), f32 accumulation.
//
// `gemm`: a 128 × BN tile (rows of x × weight rows) per workgroup of 256
// invocations = 8 subgroups in 2 × 4 (128 = 2 × 2 with N2), each owning
// 64 × SW (4 × SW/16 fragments; SW = 64 with SW64, else 32), so each
// fragment loaded from workgroup memory feeds SW/16 or 4 products. K advances BK (32, or 64
// with BK64) per slice; the next slice's global words are loaded into
// registers before the current slice is multiplied. With DB two slice
// buffers (one barrier per slice), else one (two barriers per slice).
// With WQ (Q4_0 / Q4_1 / Q8_0) the weights are staged from their blocks
// instead (one block per invocation, decoded to f16 while staging: no
// `to_half` pass or f16 copy for them); x always comes from its copy.
// Workgroups whose tile is wholly inside m and cols store their
// accumulators (plus the residual, loaded as a fragment) straight to y;
// edge tiles go through a 16 × 16 staging tile per subgroup.
// mul_mat_fused's prefill (ops/matmul_fused.rs) folds in: its RMSNorm into
// x's conversion (`to_half_norm`, NORM), and with GLU its SwiGLU (and
// residual) into the epilogue — each subgroup's weight rows are the gate
// rows of 16 output columns, then their up rows (`wrow`), and `out_glu`
// combines the two fragments through the staging tile; cols is then the
// number of outputs (gate rows).
//
// Params: m, cols (output columns of this dispatch), k, n (y's row stride),
// n0 (first output column), has_res, nsp, zcols.
// Split-K (a small grid over a long K): workgroup layer z multiplies K
// slices z·nsp .. and stores its partial product at columns n0 + z·zcols
// of y (then a scratch [m, S·cols]); `ksum` adds the S partials (and the
// residual) into the real y.
// Bindings (`to_half`): 0 params, 1 W (a weight chunk), 2 x [m, k] as
// vec4, 3 the f16 rows (written). (`gemm`): 0 params, 1 the weight chunk's
// f16 rows (padded to a multiple of BN rows, zero; with WQ the chunk
// itself), 2 x's f16 rows [m, k],
// 3 y [m, n], 4 res [m, n] (x's rows when has_res = 0).
enable f16;
#if HALF
#elif NORM
#elif SUM
#else
enable wgpu_cooperative_matrix;
#endif

struct Params {
    m: u32,
    cols: u32,
    k: u32,
    n: u32,
    n0: u32,
    has_res: u32,
    // (`gemm`) K slices per workgroup layer z (all of them without split-K)
    // and the column offset of layer z's partial (0 without split-K).
    nsp: u32,
    zcols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
const F16_MAX: f32 = 65504.0;

#if HALF
// ---- `to_half`: rows of x (has_res = 0) or of the dequantized weights
// (has_res = 1) as packed f16 words, rows m..n0 (the padding) zero; params
// m = rows, n0 = padded rows, k.
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> hbuf: array<u32>;
#include "common/weights.wgsl"

@compute @workgroup_size(256)
fn to_half(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let kg = p.k / 4u;
    if (i >= p.n0 * kg) {
        return;
    }
    let r = i / kg;
    let g = i % kg;
    var v = vec4<f32>(0.0);
    if (r < p.m) {
        if (p.has_res != 0u) {
            v = w4(r, p.k, g);
        } else {
            v = xv[i];
        }
    }
    let c = clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX));
    hbuf[2u * i] = pack2x16float(c.xy);
    hbuf[2u * i + 1u] = pack2x16float(c.zw);
}
#elif NORM
// ---- `to_half_norm`: x's rows RMS-normalized (times the norm weight) as
// packed f16 words, one workgroup per row (the f32 `norm.wgsl` pass and
// `to_half` in one: mul_mat_fused's prefill prologue); params m = rows,
// k, has_res = eps's bits. Sums in f32 as norm.wgsl's.
@group(0) @binding(1) var<storage, read> nw: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> hbuf: array<u32>;
const WG: u32 = 256u;
#include "common/reduce.wgsl"

@compute @workgroup_size(256)
fn to_half_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.m) {
        return;
    }
    let kg = p.k / 4u;
    let base = row * kg;
    var ss = 0.0;
    for (var g = lid; g < kg; g += WG) {
        let v = xv[base + g];
        ss += dot(v, v);
    }
    let inv = inverseSqrt(wg_sum(ss, lid) / f32(p.k) + bitcast<f32>(p.has_res));
    for (var g = lid; g < kg; g += WG) {
        let v = xv[base + g] * inv * nw[g];
        let c = clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX));
        hbuf[2u * (base + g)] = pack2x16float(c.xy);
        hbuf[2u * (base + g) + 1u] = pack2x16float(c.zw);
    }
}
#elif SUM
// ---- `ksum`: y[r, n0 + c] = Σ_z part[r, z·cols + c] (+ res); params m,
// cols, S (in k), n, n0, has_res. With SUM4 (cols, n and n0 multiples of
// 4) four columns per invocation, as vec4s.
#if SUM4
alias V = vec4<f32>;
const VW: u32 = 4u;
#else
alias V = f32;
const VW: u32 = 1u;
#endif
@group(0) @binding(1) var<storage, read> part: array<V>;
@group(0) @binding(2) var<storage, read_write> y: array<V>;
@group(0) @binding(3) var<storage, read> res: array<V>;

@compute @workgroup_size(256)
fn ksum(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let cv = p.cols / VW;
    if (i >= p.m * cv) {
        return;
    }
    let r = i / cv;
    let c = i % cv;
    let ns = p.k;
    var v = V(0.0);
    for (var z = 0u; z < ns; z++) {
        v += part[(r * ns + z) * cv + c];
    }
    let o = (r * p.n + p.n0) / VW + c;
    if (p.has_res != 0u) {
        v += res[o];
    }
    y[o] = v;
}
#else
// (f16 rows read 4 values at a time: a 16-byte word is two loads.)
#if WQ
@group(0) @binding(1) var<storage, read> W: array<u32>;
#include "quant/bytes.wgsl"
#else
@group(0) @binding(1) var<storage, read> wh: array<vec4<f16>>;
#endif
#if XF32
// XF32: x read as f32 and converted while staging (no `to_half` pass).
@group(0) @binding(2) var<storage, read> xf: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> xh: array<vec4<f16>>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;

const BM: u32 = 128u;
#if SW64
const SW: u32 = 64u;
#else
const SW: u32 = 32u;
#endif
// Subgroups along the weight rows: 4 (a workgroup of 256), or 2 with N2
// (128: twice the workgroups where a product's grid is small).
#if N2
const NSN: u32 = 2u;
#else
const NSN: u32 = 4u;
#endif
const WGS: u32 = 64u * NSN;
const BN: u32 = NSN * SW;
#if BK64
const BK: u32 = 64u;
#else
const BK: u32 = 32u;
#endif
// Row stride of the staged operands in f16 (80 or 144 bytes: an odd
// number of 16-byte units, so the 8 rows of a fragment load fall in
// distinct banks).
const BKP: u32 = BK + 8u;
// 16-byte words (8 values) per row per slice, and per invocation per slice.
const KV: u32 = BK / 8u;
const LA: u32 = BM * KV / WGS;
const LB: u32 = BN * KV / WGS;
#if DB
const NBUF: u32 = 2u;
#else
const NBUF: u32 = 1u;
#endif

// With V4 the staged operands are vec4<f16> arrays (8-byte stores; the
// fragment loads then count offsets and strides in vec4s, as SPIR-V's
// cooperative load does for a vector pointee), else f16 arrays.
#if V4
var<workgroup> As: array<vec4<f16>, NBUF * BM * BKP / 4u>;
var<workgroup> Bs: array<vec4<f16>, NBUF * BN * BKP / 4u>;
const EV: u32 = 4u;
#else
var<workgroup> As: array<f16, NBUF * BM * BKP>;
var<workgroup> Bs: array<f16, NBUF * BN * BKP>;
const EV: u32 = 1u;
#endif
var<workgroup> Cs: array<f32, 2u * NSN * 256u>;

// Eight values (one 16-byte word) of slice s: row r of x / of the weight
// chunk, word c of the slice; zero past m, cols or k.
struct Word {
    lo: vec4<f16>,
    hi: vec4<f16>,
}

fn load_x(r: u32, s: u32, c: u32) -> Word {
    let kk = s * BK + 8u * c;
    if (r < p.m && kk < p.k) {
        let i = (r * p.k + kk) / 4u;
#if XF32
        let lim = vec4<f32>(F16_MAX);
        return Word(vec4<f16>(clamp(xf[i], -lim, lim)), vec4<f16>(clamp(xf[i + 1u], -lim, lim)));
#else
        return Word(xh[i], xh[i + 1u]);
#endif
    }
    return Word(vec4<f16>(0.0h), vec4<f16>(0.0h));
}

fn put_a(i: u32, v: Word) {
#if V4
    As[i / 4u] = v.lo;
    As[i / 4u + 1u] = v.hi;
#else
    As[i] = v.lo.x;
    As[i + 1u] = v.lo.y;
    As[i + 2u] = v.lo.z;
    As[i + 3u] = v.lo.w;
    As[i + 4u] = v.hi.x;
    As[i + 5u] = v.hi.y;
    As[i + 6u] = v.hi.z;
    As[i + 7u] = v.hi.w;
#endif
}

// The weight row staged as row j of the workgroup's BN (tile base c0 =
// wid.x · BN), or NO_ROW past the chunk. With GLU (SW = 32; the chunk is
// gate rows then up rows, p.cols of each) the tile covers BN / 2 output
// columns from c0 / 2: subgroup column sn's 32 rows are the gate rows of
// its 16 columns, then their up rows, so each subgroup holds both halves
// of its outputs (fragments c?0 and c?1).
const NO_ROW: u32 = 0xffffffffu;
fn wrow(c0: u32, j: u32) -> u32 {
#if GLU
    let col = c0 / 2u + (j / SW) * (SW / 2u) + j % (SW / 2u);
    if (col >= p.cols) {
        return NO_ROW;
    }
    return select(col, col + p.cols, j % SW >= SW / 2u);
#else
    let row = c0 + j;
    return select(NO_ROW, row, row < p.cols);
#endif
}

// ---- The weight slice's staging: `w_fetch` reads this invocation's share
// of slice s into registers, `w_put` writes it to buffer buf of Bs.
#if WQ
// WQ: straight from the quantized weights (Q4_0 / Q4_1 / Q8_0), one
// 32-weight block per invocation (those below BN · BK/32), read as NWQ
// aligned words and decoded to f16 while staging.
const NBK: u32 = BK / 32u;
#if W_Q8_0
const NWQ: u32 = 9u;
const BLOCK_BYTES: u32 = 34u;
#elif W_Q4_1
const NWQ: u32 = 5u;
const BLOCK_BYTES: u32 = 20u;
#else
const NWQ: u32 = 5u;
const BLOCK_BYTES: u32 = 18u;
#endif
struct WRegs {
    a: array<u32, NWQ>,
}

// Block u of chunk row `row`, or zeros (d = 0) outside the chunk.
fn w_fetch(c0: u32, s: u32, lid: u32) -> WRegs {
    var r: WRegs;
    let row = wrow(c0, lid / NBK);
    let u = s * NBK + lid % NBK;
    if (lid < BN * NBK && row != NO_ROW && u < p.k / 32u) {
        let o = (row * (p.k / 32u) + u) * BLOCK_BYTES / 4u;
        for (var i = 0u; i < NWQ; i++) {
            r.a[i] = W[o + i];
        }
    }
    return r;
}

fn put_w4(i: u32, v: vec4<f32>) {
    let h = vec4<f16>(clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX)));
#if V4
    Bs[i / 4u] = h;
#else
    Bs[i] = h.x;
    Bs[i + 1u] = h.y;
    Bs[i + 2u] = h.z;
    Bs[i + 3u] = h.w;
#endif
}

fn w_put(buf: u32, r: WRegs, c0: u32, s: u32, lid: u32) {
    if (lid >= BN * NBK) {
        return;
    }
    // (Rows past the chunk fetched zeros: d = 0, whatever `mid` says.)
    let row = wrow(c0, lid / NBK);
    let u = s * NBK + lid % NBK;
    let base = (buf * BN + lid / NBK) * BKP + (lid % NBK) * 32u;
    // Whether the block starts mid-word (its d in the first word's high
    // half, the quants aligned).
    let mid = (((row * (p.k / 32u) + u) * BLOCK_BYTES) & 2u) != 0u;
#if W_Q4_1
    let dm = unpack2x16float(r.a[0]);
    for (var i = 0u; i < 4u; i++) {
        let q = r.a[i + 1u];
        put_w4(base + 4u * i, dm.x * nib4(q, 0u) + vec4<f32>(dm.y));
        put_w4(base + 16u + 4u * i, dm.x * nib4(q, 4u) + vec4<f32>(dm.y));
    }
#elif W_Q8_0
    let d = unpack2x16float(select(r.a[0] & 0xffffu, r.a[0] >> 16u, mid)).x;
    for (var i = 0u; i < 8u; i++) {
        put_w4(base + 4u * i, d * i8x4(span_word(r.a[i], r.a[i + 1u], mid)));
    }
#else
    let d = unpack2x16float(select(r.a[0] & 0xffffu, r.a[0] >> 16u, mid)).x;
    for (var i = 0u; i < 4u; i++) {
        let q = span_word(r.a[i], r.a[i + 1u], mid);
        put_w4(base + 4u * i, d * (nib4(q, 0u) - vec4<f32>(8.0)));
        put_w4(base + 16u + 4u * i, d * (nib4(q, 4u) - vec4<f32>(8.0)));
    }
#endif
}
#else
struct WRegs {
    v: array<Word, LB>,
}

// Row `row` of the f16 chunk, words of slice s; zero past the chunk
// (NO_ROW) or k.
fn load_w(row: u32, s: u32, c: u32) -> Word {
    let kk = s * BK + 8u * c;
    if (row != NO_ROW && kk < p.k) {
        let i = (row * p.k + kk) / 4u;
        return Word(wh[i], wh[i + 1u]);
    }
    return Word(vec4<f16>(0.0h), vec4<f16>(0.0h));
}

fn w_fetch(c0: u32, s: u32, lid: u32) -> WRegs {
    var r: WRegs;
    for (var i = 0u; i < LB; i++) {
        r.v[i] = load_w(wrow(c0, lid / KV + (WGS / KV) * i), s, lid % KV);
    }
    return r;
}

fn w_put(buf: u32, r: WRegs, c0: u32, s: u32, lid: u32) {
    for (var i = 0u; i < LB; i++) {
        let v = r.v[i];
        let o = (buf * BN + lid / KV + (WGS / KV) * i) * BKP + 8u * (lid % KV);
#if V4
        Bs[o / 4u] = v.lo;
        Bs[o / 4u + 1u] = v.hi;
#else
        Bs[o] = v.lo.x;
        Bs[o + 1u] = v.lo.y;
        Bs[o + 2u] = v.lo.z;
        Bs[o + 3u] = v.lo.w;
        Bs[o + 4u] = v.hi.x;
        Bs[o + 5u] = v.hi.y;
        Bs[o + 6u] = v.hi.z;
        Bs[o + 7u] = v.hi.w;
#endif
    }
}
#endif

// The first output column of this workgroup's layer: n0 (+ z·zcols).
var<private> n0z: u32;
fn out_n0() -> u32 {
    return n0z;
}

// One 16 × 16 result at rows r.., columns col.. of this dispatch, wholly
// inside m and cols: straight to y, plus the residual loaded as a fragment.

fn out_full(c: coop_mat16x16<f32, C>, r: u32, col: u32) {
    let ld = p.n;
    let o = r * ld + n0z + col;
    if (p.has_res != 0u) {
        // (Operands named first: naga 30's SPIR-V writer does not emit an
        // expression made inside a cooperative store's arguments.)
        let r16 = coopLoadT<coop_mat16x16<f32, C>>(&res[o], ld);
        let v = c + r16;
        coopStoreT(v, &y[o], ld);
    } else {
        coopStoreT(c, &y[o], ld);
    }
}

// An edge tile: through this subgroup's staging tile.
#include "common/coop_out.wgsl"

#if GLU
// SwiGLU of a gate fragment and its up fragment (16 × 16 at rows r..,
// output columns col..), through the staging tile: lane l gets row
// r + l / 2, columns col + (l % 2)·8 .. + 8 of each, and writes
// silu(gate)·up (+ res) inside m and cols. Every invocation calls it.
fn out_glu(gate: coop_mat16x16<f32, C>, up: coop_mat16x16<f32, C>, st: u32, r: u32,
           col: u32, lane: u32) {
    let e = st + (lane / 2u) * 16u + (lane % 2u) * 8u;
    var gv: array<f32, 8>;
    coopStoreT(gate, &Cs[st], 16u);
    workgroupBarrier();
    for (var j = 0u; j < 8u; j++) {
        gv[j] = Cs[e + j];
    }
    workgroupBarrier();
    coopStoreT(up, &Cs[st], 16u);
    workgroupBarrier();
    let row = r + lane / 2u;
    let c0 = col + (lane % 2u) * 8u;
    if (row < p.m) {
        for (var j = 0u; j < 8u; j++) {
            if (c0 + j < p.cols) {
                let o = row * p.n + n0z + c0 + j;
                let g = gv[j];
                var v = g / (1.0 + exp(-g)) * Cs[e + j];
                if (p.has_res != 0u) {
                    v += res[o];
                }
                y[o] = v;
            }
        }
    }
    workgroupBarrier();
}
#endif

@compute @workgroup_size(WGS)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let c0 = wid.x * BN;
    let r0 = wid.y * BM;
    n0z = p.n0 + wid.z * p.zcols;
    // Staging: word lid % KV of row lid / KV (+ WGS / KV per step).
    let lr = lid / KV;
    let lc = lid % KV;
    let rstep = WGS / KV;
    // This layer's K slices: sa .. sb.
    let sa = wid.z * p.nsp;
    let sb = min((p.k + BK - 1u) / BK, sa + p.nsp);
    var xr: array<Word, LA>;
    for (var i = 0u; i < LA; i++) {
        xr[i] = load_x(r0 + lr + rstep * i, sa, lc);
    }
    var wr = w_fetch(c0, sa, lid);
    // This subgroup's block: x rows sm·64 .., weight rows sn·SW ...
    let sm = sg % 2u;
    let sn = sg / 2u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c20 = coop_mat16x16<f32, C>();
    var c21 = coop_mat16x16<f32, C>();
    var c30 = coop_mat16x16<f32, C>();
    var c31 = coop_mat16x16<f32, C>();
#if SW64
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    var c22 = coop_mat16x16<f32, C>();
    var c23 = coop_mat16x16<f32, C>();
    var c32 = coop_mat16x16<f32, C>();
    var c33 = coop_mat16x16<f32, C>();
#endif
    for (var s = sa; s < sb; s++) {
#if DB
        let buf = s & 1u;
#else
        let buf = 0u;
        if (s > sa) {
            // The previous slice's fragments are loaded before it is
            // overwritten.
            workgroupBarrier();
        }
#endif
        for (var i = 0u; i < LA; i++) {
            put_a((buf * BM + lr + rstep * i) * BKP + 8u * lc, xr[i]);
        }
        w_put(buf, wr, c0, s, lid);
        workgroupBarrier();
        if (s + 1u < sb) {
            for (var i = 0u; i < LA; i++) {
                xr[i] = load_x(r0 + lr + rstep * i, s + 1u, lc);
            }
            wr = w_fetch(c0, s + 1u, lid);
        }
        let ia = (buf * BM + sm * 64u) * BKP;
        let ib = (buf * BN + sn * SW) * BKP;
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&As[(ia + kk) / EV], BKP / EV);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&As[(ia + 16u * BKP + kk) / EV], BKP / EV);
            let a2 = coopLoadT<coop_mat16x16<f16, A>>(&As[(ia + 32u * BKP + kk) / EV], BKP / EV);
            let a3 = coopLoadT<coop_mat16x16<f16, A>>(&As[(ia + 48u * BKP + kk) / EV], BKP / EV);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&Bs[(ib + kk) / EV], BKP / EV);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&Bs[(ib + 16u * BKP + kk) / EV], BKP / EV);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c20 = coopMultiplyAdd(a2, b0, c20);
            c30 = coopMultiplyAdd(a3, b0, c30);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c21 = coopMultiplyAdd(a2, b1, c21);
            c31 = coopMultiplyAdd(a3, b1, c31);
#if SW64
            let b2 = coopLoad<coop_mat16x16<f16, B>>(&Bs[(ib + 32u * BKP + kk) / EV], BKP / EV);
            let b3 = coopLoad<coop_mat16x16<f16, B>>(&Bs[(ib + 48u * BKP + kk) / EV], BKP / EV);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c22 = coopMultiplyAdd(a2, b2, c22);
            c32 = coopMultiplyAdd(a3, b2, c32);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c13 = coopMultiplyAdd(a1, b3, c13);
            c23 = coopMultiplyAdd(a2, b3, c23);
            c33 = coopMultiplyAdd(a3, b3, c33);
#endif
        }
    }
    let st = sg * 256u;
    let rb = r0 + sm * 64u;
#if GLU
    let ocb = c0 / 2u + sn * (SW / 2u);
    out_glu(c00, c01, st, rb, ocb, lane);
    out_glu(c10, c11, st, rb + 16u, ocb, lane);
    out_glu(c20, c21, st, rb + 32u, ocb, lane);
    out_glu(c30, c31, st, rb + 48u, ocb, lane);
#else
    let cb = c0 + sn * SW;
    // (Two copies of the calls: cooperative-matrix operations need control
    // flow the validator can prove uniform, which a function's bool
    // parameter is not.)
    if (r0 + BM <= p.m && c0 + BN <= p.cols) {
        out_full(c00, rb, cb);
        out_full(c10, rb + 16u, cb);
        out_full(c20, rb + 32u, cb);
        out_full(c30, rb + 48u, cb);
        out_full(c01, rb, cb + 16u);
        out_full(c11, rb + 16u, cb + 16u);
        out_full(c21, rb + 32u, cb + 16u);
        out_full(c31, rb + 48u, cb + 16u);
#if SW64
        out_full(c02, rb, cb + 32u);
        out_full(c12, rb + 16u, cb + 32u);
        out_full(c22, rb + 32u, cb + 32u);
        out_full(c32, rb + 48u, cb + 32u);
        out_full(c03, rb, cb + 48u);
        out_full(c13, rb + 16u, cb + 48u);
        out_full(c23, rb + 32u, cb + 48u);
        out_full(c33, rb + 48u, cb + 48u);
#endif
    } else {
        out_edge(c00, st, rb, cb, lane);
        out_edge(c10, st, rb + 16u, cb, lane);
        out_edge(c20, st, rb + 32u, cb, lane);
        out_edge(c30, st, rb + 48u, cb, lane);
        out_edge(c01, st, rb, cb + 16u, lane);
        out_edge(c11, st, rb + 16u, cb + 16u, lane);
        out_edge(c21, st, rb + 32u, cb + 16u, lane);
        out_edge(c31, st, rb + 48u, cb + 16u, lane);
#if SW64
        out_edge(c02, st, rb, cb + 32u, lane);
        out_edge(c12, st, rb + 16u, cb + 32u, lane);
        out_edge(c22, st, rb + 32u, cb + 32u, lane);
        out_edge(c32, st, rb + 48u, cb + 32u, lane);
        out_edge(c03, st, rb, cb + 48u, lane);
        out_edge(c13, st, rb + 16u, cb + 48u, lane);
        out_edge(c23, st, rb + 32u, cb + 48u, lane);
        out_edge(c33, st, rb + 48u, cb + 48u, lane);
#endif
    }
#endif
}
#endif
