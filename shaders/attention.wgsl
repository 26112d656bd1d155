// attention.wgsl — causal GQA attention over a KV cache (ops/attention.rs).
// Params (all entries): t, hq, hkv, d, cap, scale, pos_sym, ns, window (a
// sliding window of keys, 0: all; a query at position n−1 sees keys
// [n − window, n) — key_lo below).
//
// attn_rows / attn_split bindings: 0 params, 1 q: array<f32> [t, hq, d],
//   2 k, 3 v: [hkv, cap, d] (array<f32>, or f16 pairs in array<u32> with
//   KV_F16; keys as vec4 with KV_VEC4, f32 and d % 4 == 0), 4 syms:
//   array<u32>, 5 out: attn_rows → y [t, hq·d];
//   attn_split → partials [t·hq, ns, d+2] = (max, sum, Σ p·v).
// attn_combine bindings (COMBINE): 0 params, 1 partials, 2 y.
// Dispatch: attn_rows one workgroup of 64 per (token, head), folded by
// ops::grid; attn_split (t·hq, ns); attn_combine one per (token, head).
// Each thread owns head dims lid + 64·i (i < 4, so d ≤ 256).
// ONE: attn_one (bindings as attn_rows) — one workgroup of 256 per (token,
// head) in one dispatch: keys in blocks of 256, one per invocation. For the
// values each invocation owns 4 dims (a quad; nq = ⌈d/4⌉ quads, padded to a
// power of two nqp) and the workgroup splits into 256/nqp key groups, each
// summing every (256/nqp)-th key of a block: 16 serial keys per block at
// d = 64. The groups' sums merge at the end.
// TILE: attn_tile (bindings as attn_rows; f32 values need KV_VEC4, d % 4 == 0
// and d ≤ TD) — prefill: one workgroup of 256 per (tile of TQ consecutive
// tokens, head). Keys and values pass through workgroup memory TK at a time
// and serve all TQ queries (attn_one reads them once per query): 16
// invocations per query row, each scoring 2 keys of a block and owning 4
// value dims; online softmax per row.
// GQA: attn_gqa (as attn_tile; d ≤ 64, G = hq / hkv ≤ 256 / LPR) — one
// workgroup of 256 per (tile of consecutive tokens, KV head) whose rows are
// (token, query head of the group) pairs: ⌊GR / G⌋ tokens of all G heads,
// so each block of keys and values staged serves every head that reads it
// (attn_tile stages it once per query head). LPR invocations per row (4, or
// 8 with LPR8; GR = 256 / LPR rows): each scores TK / LPR keys of a block
// (keys l, l + LPR, …) and owns 64 / LPR value dims; q in registers.
// ROPE_Q (attn_rows, attn_split, attn_one, attn_tile, attn_gqa): q is a window of rows of ld values (head 0
//   at column col0, a fused Q/K/V output) and is roped as it is loaded:
//   rope.wgsl's parameter words 3..16 follow window, binding 6 is the frequency
//   divisors (q itself when there are none).
// NEW_KV (with ROPE_Q, t = 1; attn_rows, attn_split, attn_one): the decode
//   step's own key and value come from the fused Q/K/V row too — K heads at
//   column k_col0 (roped like q), V heads at v_col0 (parameter words after
//   ld) — and are written into the caches (bound read_write) at position pos
//   by one workgroup per KV head (the first query head of its group; in
//   attn_split the split holding key pos). Every workgroup scores key pos
//   from its own copy (kn, vn; rounded to f16 with KV_F16, as the cache holds
//   it), so none reads a cache row another is writing: the two cache-write
//   dispatches before attention fold into it (ops/copy.rs `deferred`).

#if ONE
const WG: u32 = 256u;
#elif TILE
const WG: u32 = 256u;
#elif GQA
const WG: u32 = 256u;
#else
const WG: u32 = 64u;
#endif
#include "common/reduce.wgsl"

#include "common/attention_io.wgsl"

#if COMBINE
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Split s's weight exp(m_s − max) (0 for an empty split), one per invocation.
var<workgroup> ws: array<f32, WG>;

// One invocation per split reads its (max, sum) and weight in parallel (the
// splits' partials were just written by attn_split: a serial walk over them
// waited on memory 2·ns times); then each head dim adds the weighted sums.
@compute @workgroup_size(64)
fn attn_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.t * p.hq) {
        return;
    }
    let stride = p.d + 2u;
    let base = row * p.ns * stride;
    var ms = -3.0e38;
    var ls = 0.0;
    if (lid < p.ns) {
        ls = part[base + lid * stride + 1u];
        if (ls > 0.0) {
            ms = part[base + lid * stride];
        }
    }
    let mx = wg_max(ms, lid);
    var w = 0.0;
    if (ls > 0.0) {
        w = exp(ms - mx);
    }
    ws[lid] = w;
    // wg_sum's barriers also publish ws.
    let l = wg_sum(w * ls, lid);
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s < p.ns; s++) {
        let ww = ws[s];
        if (ww > 0.0) {
            let o = base + s * stride + 2u;
            for (var i = 0u; i < 4u; i++) {
                let c = lid + WG * i;
                if (c < p.d) {
                    acc[i] += ww * part[o + c];
                }
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let c = lid + WG * i;
        if (c < p.d) {
            y[row * p.d + c] = acc[i] / l;
        }
    }
}
#else
var<workgroup> qs: array<f32, 256>;
var<workgroup> ps: array<f32, WG>;
var<workgroup> pos0: u32;

struct State {
    m: f32,
    l: f32,
    acc: vec4<f32>,
}

// The first key a query that sees keys [0, n_kv) attends to.
fn key_lo(n_kv: u32) -> u32 {
    if (p.window > 0u && n_kv > p.window) {
        return n_kv - p.window;
    }
    return 0u;
}

// The run-time position of query token 0, as a workgroup-uniform value.
fn load_pos(lid: u32) -> u32 {
    if (lid == 0u) {
        pos0 = syms[p.pos_sym];
    }
    return workgroupUniformLoad(&pos0);
}

// Query row `qi` (roped with ROPE_Q) times the scale into qs.
fn load_q(qi: u32, lid: u32) {
#if ROPE_Q
    let ti = qi / p.hq;
    let xb = ti * p.ld + p.col0 + (qi % p.hq) * p.d;
    let qpos = f32(pos0 + ti);
    for (var c = lid; c < p.d; c += WG) {
        qs[c] = rotated(xb, c, qpos) * p.scale;
    }
#else
    for (var c = lid; c < p.d; c += WG) {
        qs[c] = q[qi * p.d + c] * p.scale;
    }
#endif
    workgroupBarrier();
}

#if NEW_KV
// This step's key (roped) and value of the workgroup's KV head, and its
// position (jn = pos, t = 1).
var<workgroup> kn: array<f32, 256>;
var<workgroup> vn: array<f32, 256>;
var<private> jn: u32;

// The value as the cache stores it (f16 with KV_F16).
fn as_cached(x: f32) -> f32 {
#if KV_F16
    return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;
#else
    return x;
#endif
}

// Loads kn and vn for KV head kvh (published by load_q's barrier, which
// must follow).
fn load_new_kv(kvh: u32, lid: u32) {
    jn = pos0;
    for (var c = lid; c < p.d; c += WG) {
        kn[c] = as_cached(rotated(p.k_col0 + kvh * p.d, c, f32(pos0)));
        vn[c] = as_cached(q[p.v_col0 + kvh * p.d + c]);
    }
}

// Writes kn and vn into cache row jn of KV head kvh (after load_q).
fn store_new_kv(kvh: u32, lid: u32) {
    let e0 = (kvh * p.cap + jn) * p.d;
#if KV_F16
    for (var c = 2u * lid; c < p.d; c += 2u * WG) {
        kc[(e0 + c) >> 1u] = pack2x16float(vec2<f32>(kn[c], kn[c + 1u]));
        vc[(e0 + c) >> 1u] = pack2x16float(vec2<f32>(vn[c], vn[c + 1u]));
    }
#elif KV_VEC4
    for (var c = 4u * lid; c < p.d; c += 4u * WG) {
        kc[(e0 + c) >> 2u] = vec4<f32>(kn[c], kn[c + 1u], kn[c + 2u], kn[c + 3u]);
        vc[(e0 + c) >> 2u] = vec4<f32>(vn[c], vn[c + 1u], vn[c + 2u], vn[c + 3u]);
    }
#else
    for (var c = lid; c < p.d; c += WG) {
        kc[e0 + c] = kn[c];
        vc[e0 + c] = vn[c];
    }
#endif
}

// Whether query row `row`'s workgroup writes its KV head's new row (the
// first query head of the group).
fn kv_writer(row: u32) -> bool {
    return (row % p.hq) % (p.hq / p.hkv) == 0u;
}
#endif

// qs · key j of KV head kvh.
fn qk(kvh: u32, j: u32) -> f32 {
#if NEW_KV
    if (j == jn) {
        var s = 0.0;
        for (var c = 0u; c < p.d; c++) {
            s += qs[c] * kn[c];
        }
        return s;
    }
#endif
    let kb = (kvh * p.cap + j) * p.d;
    var dot_qk = 0.0;
#if KV_VEC4
    for (var c = 0u; c < p.d; c += 4u) {
        let qv = vec4<f32>(qs[c], qs[c + 1u], qs[c + 2u], qs[c + 3u]);
        dot_qk += dot(qv, kc[(kb + c) >> 2u]);
    }
#else
    for (var c = 0u; c < p.d; c++) {
        dot_qk += qs[c] * k_at(kb + c);
    }
#endif
    return dot_qk;
}

// One block of the online softmax: scores of keys c0 + lid (those < j1) of
// KV head kvh against qs; each key's weight exp(s − m_new) goes to ps.
// Returns (m_new, exp(m − m_new), Σ weights). Uniform control flow only.
fn softmax_block(kvh: u32, c0: u32, j1: u32, m: f32, lid: u32) -> vec3<f32> {
    let j = c0 + lid;
    var s = -3.0e38;
    if (j < j1) {
        s = qk(kvh, j);
    }
    let m_new = max(m, wg_max(s, lid));
    let corr = exp(m - m_new);
    var e = 0.0;
    if (j < j1) {
        e = exp(s - m_new);
    }
    ps[lid] = e;
    // wg_sum's barriers also publish ps.
    return vec3<f32>(m_new, corr, wg_sum(e, lid));
}

#if TILE
#define KV_BLOCKS
#endif
#if GQA
#define KV_BLOCKS
#endif
#if KV_BLOCKS
// attn_tile's and attn_gqa's blocks of TK keys, four dims per element (d ≤
// TD, a multiple of 4; zero past d): keys [key][dim/4] with a row stride of
// 17 (the 8 lanes of a 16-byte load phase hit distinct banks), values
// [key][dim/4]. One global load phase for both.
const TK: u32 = 32u;
const TD: u32 = 64u;
const TD4: u32 = TD / 4u;
const KS: u32 = TD4 + 1u;
var<workgroup> tk: array<vec4<f32>, TK * KS>;
var<workgroup> tv: array<vec4<f32>, TK * TD4>;

// Dims 4·c4 .. 4·c4 + 3 of token ti's query head h, scaled (and roped with
// ROPE_Q; query token 0 at position pos).
fn q_quad(ti: u32, h: u32, c4: u32, pos: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
#if ROPE_Q
        v[i] = rotated(ti * p.ld + p.col0 + h * p.d, 4u * c4 + i, f32(pos + ti));
#else
        v[i] = q[(ti * p.hq + h) * p.d + 4u * c4 + i];
#endif
    }
    return v * p.scale;
}

// Keys and values c0 .. c0 + TK (those < j_hi) of the KV head at cache
// element kb into tk and tv; nd4 = d / 4.
fn stage_kv(c0: u32, j_hi: u32, kb: u32, nd4: u32, lid: u32) {
    for (var e = lid; e < TK * TD4; e += WG) {
        let kk = e / TD4;
        let c4 = e % TD4;
        var kv = vec4<f32>(0.0);
        var vv = vec4<f32>(0.0);
        if (c0 + kk < j_hi && c4 < nd4) {
            let o = kb + (c0 + kk) * p.d + 4u * c4;
            kv = k4(o);
            vv = v4(o);
        }
        tk[kk * KS + c4] = kv;
        tv[e] = vv;
    }
}
#endif

#if TILE
const TQ: u32 = 16u;
// Scaled (roped) queries [row][dim/4]; scores (except with SG16, where
// subgroups of at least 16 take each row's maximum by shuffles) and
// weights [row][key]; the blocks above. Four barriers per block of keys
// (three with SG16); each invocation's loads are 16 bytes, so the
// products read workgroup memory a quarter as often as one value per load.
var<workgroup> tq: array<vec4<f32>, TQ * TD4>;
#if !SG16
var<workgroup> tp: array<f32, TQ * TK>;
#endif
var<workgroup> tw: array<f32, TQ * TK>;

@compute @workgroup_size(256)
fn attn_tile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= (p.t + TQ - 1u) / TQ * p.hq) {
        return;
    }
    let h = wg % p.hq;
    let t0 = wg / p.hq * TQ;
    let kvh = h / (p.hq / p.hkv);
    let pos = load_pos(lid);
    // This invocation: query row r of the tile, keys g and g + 16 of each
    // block, value dims 4g..4g+3.
    let r = lid / 16u;
    let g = lid % 16u;
    let live = t0 + r < p.t;
    let n_kv = pos + t0 + r + 1u;
    let lo = key_lo(n_kv);
    let nd4 = p.d / 4u;
    for (var e = lid; e < TQ * TD4; e += WG) {
        let rr = e / TD4;
        let c4 = e % TD4;
        let ti = t0 + rr;
        var v = vec4<f32>(0.0);
        if (ti < p.t && c4 < nd4) {
            v = q_quad(ti, h, c4, pos);
        }
        tq[e] = v;
    }
    // The keys any row of the tile sees.
    let j_lo = key_lo(pos + t0 + 1u);
    let j_hi = pos + min(t0 + TQ, p.t);
    let kb = kvh * p.cap * p.d;
    var m = -3.0e38;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var c0 = j_lo; c0 < j_hi; c0 += TK) {
        // The previous block's keys, values and weights are read (and the
        // queries written).
        workgroupBarrier();
        stage_kv(c0, j_hi, kb, nd4, lid);
        workgroupBarrier();
        var s0 = 0.0;
        var s1 = 0.0;
        for (var c4 = 0u; c4 < nd4; c4++) {
            let qv = tq[r * TD4 + c4];
            s0 += dot(qv, tk[g * KS + c4]);
            s1 += dot(qv, tk[(g + 16u) * KS + c4]);
        }
        let ja = c0 + g;
        let jb = ja + 16u;
        let ok0 = live && ja >= lo && ja < n_kv;
        let ok1 = live && jb >= lo && jb < n_kv;
#if SG16
        // The row's 16 invocations share a subgroup (subgroups of ≥ 16):
        // its maximum by shuffles, no workgroup round trip.
        var mb = max(select(-3.0e38, s0, ok0), select(-3.0e38, s1, ok1));
        mb = max(mb, subgroupShuffleXor(mb, 8u));
        mb = max(mb, subgroupShuffleXor(mb, 4u));
        mb = max(mb, subgroupShuffleXor(mb, 2u));
        mb = max(mb, subgroupShuffleXor(mb, 1u));
#else
        tp[r * TK + g] = select(-3.0e38, s0, ok0);
        tp[r * TK + g + 16u] = select(-3.0e38, s1, ok1);
        workgroupBarrier();
        var mb = -3.0e38;
        for (var j = 0u; j < TK; j++) {
            mb = max(mb, tp[r * TK + j]);
        }
#endif
        let m_new = max(m, mb);
        let corr = exp(m - m_new);
        tw[r * TK + g] = select(0.0, exp(s0 - m_new), ok0);
        tw[r * TK + g + 16u] = select(0.0, exp(s1 - m_new), ok1);
        workgroupBarrier();
        var lb = 0.0;
        var a = vec4<f32>(0.0);
        for (var j = 0u; j < TK; j++) {
            let pj = tw[r * TK + j];
            lb += pj;
            a += pj * tv[j * TD4 + g];
        }
        l = l * corr + lb;
        acc = acc * corr + a;
        m = m_new;
    }
    if (live && 4u * g < p.d) {
        let o = ((t0 + r) * p.hq + h) * p.d + 4u * g;
        for (var i = 0u; i < 4u; i++) {
            out[o + i] = acc[i] / l;
        }
    }
}
#elif GQA
#if LPR8
const LPR: u32 = 8u;
#else
const LPR: u32 = 4u;
#endif
const GR: u32 = 256u / LPR;
// Keys per lane per block, value vec4s per lane.
const KPL: u32 = TK / LPR;
const VPL: u32 = TD4 / LPR;
// The blocks above; weights [row][key] (row stride 33), and without
// SG_LPR (subgroup shuffles over a row's lanes) each lane's block maximum.
const WP: u32 = TK + 1u;
var<workgroup> gw: array<f32, GR * WP>;
#if !SG_LPR
var<workgroup> gm: array<f32, 256>;
#endif

@compute @workgroup_size(256)
fn attn_gqa(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let g = p.hq / p.hkv;
    let tq = GR / g;
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= (p.t + tq - 1u) / tq * p.hkv) {
        return;
    }
    let kvh = wg % p.hkv;
    let t0 = wg / p.hkv * tq;
    let pos = load_pos(lid);
    // This invocation: row r (token ti, query head h), lane l of its LPR.
    let r = lid / LPR;
    let l = lid % LPR;
    let ti = t0 + r / g;
    let h = kvh * g + r % g;
    let live = r < tq * g && ti < p.t;
    let n_kv = pos + ti + 1u;
    let lo = key_lo(n_kv);
    let nd4 = p.d / 4u;
    // The row's query (scaled, roped), zero past d.
    var qr: array<vec4<f32>, TD4>;
    for (var c4 = 0u; c4 < TD4; c4++) {
        var v = vec4<f32>(0.0);
        if (live && c4 < nd4) {
            v = q_quad(ti, h, c4, pos);
        }
        qr[c4] = v;
    }
    // The keys any row of the tile sees.
    let j_lo = key_lo(pos + t0 + 1u);
    let j_hi = pos + min(t0 + tq, p.t);
    let kb = kvh * p.cap * p.d;
    var m = -3.0e38;
    var lsum = 0.0;
    var acc: array<vec4<f32>, VPL>;
    for (var c0 = j_lo; c0 < j_hi; c0 += TK) {
        // The previous block's keys, values and weights are read.
        workgroupBarrier();
        stage_kv(c0, j_hi, kb, nd4, lid);
        workgroupBarrier();
        var s: array<f32, KPL>;
        for (var c4 = 0u; c4 < TD4; c4++) {
            let qv = qr[c4];
            for (var i = 0u; i < KPL; i++) {
                s[i] += dot(qv, tk[(l + LPR * i) * KS + c4]);
            }
        }
        var mb = -3.0e38;
        var ok = 0u;
        for (var i = 0u; i < KPL; i++) {
            let j = c0 + l + LPR * i;
            if (live && j >= lo && j < n_kv) {
                ok |= 1u << i;
                mb = max(mb, s[i]);
            }
        }
#if SG_LPR
        // The row's LPR lanes are consecutive in one subgroup.
        for (var x = 1u; x < LPR; x <<= 1u) {
            mb = max(mb, subgroupShuffleXor(mb, x));
        }
#else
        gm[lid] = mb;
        workgroupBarrier();
        for (var x = 0u; x < LPR; x++) {
            mb = max(mb, gm[r * LPR + x]);
        }
#endif
        let m_new = max(m, mb);
        let corr = exp(m - m_new);
        for (var i = 0u; i < KPL; i++) {
            gw[r * WP + l + LPR * i] = select(0.0, exp(s[i] - m_new), (ok & (1u << i)) != 0u);
        }
        workgroupBarrier();
        var lb = 0.0;
        var a: array<vec4<f32>, VPL>;
        for (var j = 0u; j < TK; j++) {
            let pj = gw[r * WP + j];
            lb += pj;
            for (var v = 0u; v < VPL; v++) {
                a[v] += pj * tv[j * TD4 + VPL * l + v];
            }
        }
        lsum = lsum * corr + lb;
        for (var v = 0u; v < VPL; v++) {
            acc[v] = acc[v] * corr + a[v];
        }
        m = m_new;
    }
    if (live) {
        let o = (ti * p.hq + h) * p.d;
        for (var v = 0u; v < VPL; v++) {
            let c = 4u * (VPL * l + v);
            for (var i = 0u; i < 4u; i++) {
                if (c + i < p.d) {
                    out[o + c + i] = acc[v][i] / lsum;
                }
            }
        }
    }
}
#elif ONE
var<workgroup> accs: array<vec4<f32>, 256>;

// Value dims c..c+3 (those < d) of key j of KV head kvh.
fn v_quad(kvh: u32, j: u32, c: u32) -> vec4<f32> {
#if NEW_KV
    if (j == jn) {
        var r = vec4<f32>(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (c + k < p.d) {
                r[k] = vn[c + k];
            }
        }
        return r;
    }
#endif
    let vb = (kvh * p.cap + j) * p.d;
#if KV_VEC4
    return vc[(vb + c) >> 2u];
#else
    var r = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (c + k < p.d) {
            r[k] = v_at(vb + c + k);
        }
    }
    return r;
#endif
}

@compute @workgroup_size(256)
fn attn_one(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.t * p.hq) {
        return;
    }
    let ti = row / p.hq;
    let kvh = (row % p.hq) / (p.hq / p.hkv);
    let n_kv = load_pos(lid) + ti + 1u;
#if NEW_KV
    load_new_kv(kvh, lid);
#endif
    load_q(row, lid);
#if NEW_KV
    if (kv_writer(row)) {
        store_new_kv(kvh, lid);
    }
#endif
    let nq = (p.d + 3u) / 4u;
    var nqp = 1u;
    while (nqp < nq) {
        nqp = nqp * 2u;
    }
    let groups = WG / nqp;
    let quad = lid % nqp;
    let kg = lid / nqp;
    var m = -3.0e38;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var c0 = key_lo(n_kv); c0 < n_kv; c0 += WG) {
        let b = softmax_block(kvh, c0, n_kv, m, lid);
        l = l * b.y + b.z;
        acc = acc * b.y;
        if (quad < nq) {
            let cnt = min(WG, n_kv - c0);
            for (var jj = kg; jj < cnt; jj += groups) {
                acc += ps[jj] * v_quad(kvh, c0 + jj, 4u * quad);
            }
        }
        m = b.x;
        workgroupBarrier();
    }
    accs[lid] = acc;
    workgroupBarrier();
    if (kg == 0u && quad < nq) {
        var sum = vec4<f32>(0.0);
        for (var g = 0u; g < groups; g++) {
            sum += accs[g * nqp + quad];
        }
        for (var k = 0u; k < 4u; k++) {
            let c = 4u * quad + k;
            if (c < p.d) {
                out[row * p.d + c] = sum[k] / l;
            }
        }
    }
}
#else
// Online softmax of query row `qi` against keys [j0, j1) of KV head `kvh`.
// With NEW_KV, `write`: this workgroup writes the KV head's new row.
fn attend(qi: u32, kvh: u32, j0: u32, j1: u32, lid: u32, write: bool) -> State {
#if NEW_KV
    load_new_kv(kvh, lid);
#endif
    load_q(qi, lid);
#if NEW_KV
    if (write) {
        store_new_kv(kvh, lid);
    }
#endif
    var st = State(-3.0e38, 0.0, vec4<f32>(0.0));
    for (var c0 = j0; c0 < j1; c0 += WG) {
        let b = softmax_block(kvh, c0, j1, st.m, lid);
        st.l = st.l * b.y + b.z;
        st.acc = st.acc * b.y;
        let cnt = min(WG, j1 - c0);
        for (var jj = 0u; jj < cnt; jj++) {
            let vb = (kvh * p.cap + c0 + jj) * p.d;
            let pj = ps[jj];
#if NEW_KV
            if (c0 + jj == jn) {
                for (var i = 0u; i < 4u; i++) {
                    let c = lid + WG * i;
                    if (c < p.d) {
                        st.acc[i] += pj * vn[c];
                    }
                }
                continue;
            }
#endif
            for (var i = 0u; i < 4u; i++) {
                let c = lid + WG * i;
                if (c < p.d) {
                    st.acc[i] += pj * v_at(vb + c);
                }
            }
        }
        st.m = b.x;
        workgroupBarrier();
    }
    return st;
}

@compute @workgroup_size(64)
fn attn_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.t * p.hq) {
        return;
    }
    let ti = row / p.hq;
    let kvh = (row % p.hq) / (p.hq / p.hkv);
    let n_kv = load_pos(lid) + ti + 1u;
#if NEW_KV
    let st = attend(row, kvh, key_lo(n_kv), n_kv, lid, kv_writer(row));
#else
    let st = attend(row, kvh, key_lo(n_kv), n_kv, lid, false);
#endif
    for (var i = 0u; i < 4u; i++) {
        let c = lid + WG * i;
        if (c < p.d) {
            out[row * p.d + c] = st.acc[i] / st.l;
        }
    }
}

@compute @workgroup_size(64)
fn attn_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    let s = wid.y;
    let ti = row / p.hq;
    let kvh = (row % p.hq) / (p.hq / p.hkv);
    let n_kv = load_pos(lid) + ti + 1u;
    let lo = key_lo(n_kv);
    let len = (n_kv - lo + p.ns - 1u) / p.ns;
    let j0 = min(lo + s * len, n_kv);
    let j1 = min(j0 + len, n_kv);
#if NEW_KV
    let st = attend(row, kvh, j0, j1, lid, kv_writer(row) && j0 < n_kv && n_kv <= j1);
#else
    let st = attend(row, kvh, j0, j1, lid, false);
#endif
    let o = (row * p.ns + s) * (p.d + 2u);
    if (lid == 0u) {
        out[o] = st.m;
        out[o + 1u] = st.l;
    }
    for (var i = 0u; i < 4u; i++) {
        let c = lid + WG * i;
        if (c < p.d) {
            out[o + 2u + c] = st.acc[i];
        }
    }
}
#endif
#endif
