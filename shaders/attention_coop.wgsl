// attention_coop.wgsl — prefill attention on tensor cores (ops/attention.rs,
// `Kernel::Coop`: 8-bit-activation mode on wgpu's cooperative
// matrices with `KILN_COOP_ATTN=1`; head dims ≤ 64).
// Flash attention's tiling: one workgroup of 128 (4 subgroups of 32) per
// (64 consecutive query tokens, head); keys and values pass through
// workgroup memory 64 at a time as f16. Per block each subgroup multiplies
// its 16 query rows by the block's keys (S = Q·Kᵀ, 16×16×16 f16 fragments
// into f32), applies the mask and the online softmax with two lanes per
// row (32 keys each), writes the weights as f16, and multiplies them by
// the values (P·V); the block's products are added to the lanes' running
// sums after the rescale (a fragment has no per-row scaling). Rounding:
// q (scaled, roped), k, v and the weights to f16, f32 accumulation —
// the f16 bound of `parity::q8`.
// Bindings and parameters: attention.wgsl's (common/attention_io.wgsl),
// KV_F16 / KV_VEC4 / ROPE_Q as there; no NEW_KV (prefill).
enable f16;
enable wgpu_cooperative_matrix;

#include "common/attention_io.wgsl"

const TQ: u32 = 64u;
const TK: u32 = 64u;
const TD: u32 = 64u;
// Row stride (f16) of the staged operands: 144 bytes, an odd number of
// 16-byte units (fragment rows fall in distinct banks).
const SP: u32 = TD + 8u;

// Keys [key][dim], values transposed [dim][key], and the queries (first) then the
// weights [row][key], as f16; each subgroup's 16 × 64 scores, then its
// block of P·V, as f32.
var<workgroup> ks: array<f16, TK * SP>;
var<workgroup> vs: array<f16, TK * SP>;
var<workgroup> ps: array<f16, TQ * SP>;
var<workgroup> ss: array<f32, TQ * TK>;
var<workgroup> pos0: u32;

// The first key a query that sees keys [0, n_kv) attends to.
fn key_lo(n_kv: u32) -> u32 {
    if (p.window > 0u && n_kv > p.window) {
        return n_kv - p.window;
    }
    return 0u;
}

// Dims 4c..4c+3 of cache row `row` (of this KV head's base kb), zero past d.
fn kv4(is_v: bool, kb: u32, row: u32, c: u32) -> vec4<f32> {
    if (4u * c >= p.d) {
        return vec4<f32>(0.0);
    }
    let e = kb + row * p.d + 4u * c;
#if KV_F16
    if (is_v) {
        return vec4<f32>(unpack2x16float(vc[e >> 1u]), unpack2x16float(vc[(e >> 1u) + 1u]));
    }
    return vec4<f32>(unpack2x16float(kc[e >> 1u]), unpack2x16float(kc[(e >> 1u) + 1u]));
#elif KV_VEC4
    if (is_v) {
        return vc[e >> 2u];
    }
    return kc[e >> 2u];
#else
    if (is_v) {
        return vec4<f32>(vc[e], vc[e + 1u], vc[e + 2u], vc[e + 3u]);
    }
    return vec4<f32>(kc[e], kc[e + 1u], kc[e + 2u], kc[e + 3u]);
#endif
}

// Dims 4c..4c+3 of key kk: ks[kk][4c..], vs[4c..][kk].
fn put4(kk: u32, c: u32, kv: vec4<f32>, vv: vec4<f32>) {
    let hk = vec4<f16>(kv);
    let hv = vec4<f16>(vv);
    let i = kk * SP + 4u * c;
    ks[i] = hk.x;
    ks[i + 1u] = hk.y;
    ks[i + 2u] = hk.z;
    ks[i + 3u] = hk.w;
    let j = 4u * c * SP + kk;
    vs[j] = hv.x;
    vs[j + SP] = hv.y;
    vs[j + 2u * SP] = hv.z;
    vs[j + 3u * SP] = hv.w;
}

@compute @workgroup_size(128)
fn attn_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32,
             @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= (p.t + TQ - 1u) / TQ * p.hq) {
        return;
    }
    let h = wg % p.hq;
    let t0 = wg / p.hq * TQ;
    let kvh = h / (p.hq / p.hkv);
    if (lid == 0u) {
        pos0 = syms[p.pos_sym];
    }
    let pos = workgroupUniformLoad(&pos0);
    // The tile's queries, scaled (and roped), as f16 rows of ps.
    for (var e = lid; e < TQ * TD; e += 128u) {
        let rr = e / TD;
        let c = e % TD;
        let ti = t0 + rr;
        var v = 0.0;
        if (ti < p.t && c < p.d) {
#if ROPE_Q
            v = rotated(ti * p.ld + p.col0 + h * p.d, c, f32(pos + ti)) * p.scale;
#else
            v = q[(ti * p.hq + h) * p.d + c] * p.scale;
#endif
        }
        ps[rr * SP + c] = f16(v);
    }
    workgroupBarrier();
    let qa = sg * 16u * SP;
    let q0 = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa], SP);
    let q1 = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa + 16u], SP);
    let q2 = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa + 32u], SP);
    let q3 = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa + 48u], SP);
    // This lane: row r of the subgroup's 16, keys / dims hh·32 .. + 32.
    let r = lane / 2u;
    let hh = lane % 2u;
    let qi = t0 + sg * 16u + r;
    let live = qi < p.t;
    let n_kv = pos + qi + 1u;
    let lo = key_lo(n_kv);
    let sb = sg * 16u * TK + r * TK + hh * 32u;
    // The keys any row of the tile sees.
    let j_lo = key_lo(pos + t0 + 1u);
    let j_hi = pos + min(t0 + TQ, p.t);
    let kb = kvh * p.cap * p.d;
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<f32, 32>;
    for (var c0 = j_lo; c0 < j_hi; c0 += TK) {
        // The previous block's keys, values, weights and sums are read.
        workgroupBarrier();
        for (var e = lid; e < TK * (TD / 4u); e += 128u) {
            let kk = e / (TD / 4u);
            let c = e % (TD / 4u);
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (c0 + kk < j_hi) {
                kv = kv4(false, kb, c0 + kk, c);
                vv = kv4(true, kb, c0 + kk, c);
            }
            put4(kk, c, kv, vv);
        }
        workgroupBarrier();
        // S = Q·Kᵀ: K's rows read as the columns of B (column-major).
        var s0 = coop_mat16x16<f32, C>();
        var s1 = coop_mat16x16<f32, C>();
        var s2 = coop_mat16x16<f32, C>();
        var s3 = coop_mat16x16<f32, C>();
        s0 = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&ks[0u], SP), s0);
        s1 = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&ks[16u * SP + 0u], SP), s1);
        s2 = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&ks[32u * SP + 0u], SP), s2);
        s3 = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&ks[48u * SP + 0u], SP), s3);
        s0 = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&ks[16u], SP), s0);
        s1 = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&ks[16u * SP + 16u], SP), s1);
        s2 = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&ks[32u * SP + 16u], SP), s2);
        s3 = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&ks[48u * SP + 16u], SP), s3);
        s0 = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&ks[32u], SP), s0);
        s1 = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&ks[16u * SP + 32u], SP), s1);
        s2 = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&ks[32u * SP + 32u], SP), s2);
        s3 = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&ks[48u * SP + 32u], SP), s3);
        s0 = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&ks[48u], SP), s0);
        s1 = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&ks[16u * SP + 48u], SP), s1);
        s2 = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&ks[32u * SP + 48u], SP), s2);
        s3 = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&ks[48u * SP + 48u], SP), s3);
        let so = sg * 16u * TK;
        coopStoreT(s0, &ss[so], TK);
        coopStoreT(s1, &ss[so + 16u], TK);
        coopStoreT(s2, &ss[so + 32u], TK);
        coopStoreT(s3, &ss[so + 48u], TK);
        workgroupBarrier();
        // The online softmax of row r over keys c0 + hh·32 ...
        var mb = -3.0e38;
        for (var jj = 0u; jj < 32u; jj++) {
            let j = c0 + hh * 32u + jj;
            if (live && j >= lo && j < n_kv) {
                mb = max(mb, ss[sb + jj]);
            }
        }
        mb = max(mb, subgroupShuffleXor(mb, 1u));
        let m_new = max(m, mb);
        let corr = exp(m - m_new);
        var lb = 0.0;
        for (var jj = 0u; jj < 32u; jj++) {
            let j = c0 + hh * 32u + jj;
            var e = 0.0;
            if (live && j >= lo && j < n_kv) {
                e = exp(ss[sb + jj] - m_new);
            }
            lb += e;
            ps[(sg * 16u + r) * SP + hh * 32u + jj] = f16(e);
        }
        lb += subgroupShuffleXor(lb, 1u);
        l = l * corr + lb;
        m = m_new;
        workgroupBarrier();
        // This block's P·V, then added to the rescaled sums.
        var o0 = coop_mat16x16<f32, C>();
        var o1 = coop_mat16x16<f32, C>();
        var o2 = coop_mat16x16<f32, C>();
        var o3 = coop_mat16x16<f32, C>();
        // V as B column-major from its transposed copy: (key, dim) at
        // vs[dim·SP + key].
        for (var kb16 = 0u; kb16 < 4u; kb16++) {
            let a = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa + kb16 * 16u], SP);
            let vo = kb16 * 16u;
            o0 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&vs[vo], SP), o0);
            o1 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&vs[16u * SP + vo], SP), o1);
            o2 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&vs[32u * SP + vo], SP), o2);
            o3 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&vs[48u * SP + vo], SP), o3);
        }
        coopStoreT(o0, &ss[so], TK);
        coopStoreT(o1, &ss[so + 16u], TK);
        coopStoreT(o2, &ss[so + 32u], TK);
        coopStoreT(o3, &ss[so + 48u], TK);
        workgroupBarrier();
        for (var i = 0u; i < 32u; i++) {
            acc[i] = acc[i] * corr + ss[sb + i];
        }
    }
    if (live) {
        let ob = (qi * p.hq + h) * p.d;
        for (var i = 0u; i < 32u; i++) {
            let c = hh * 32u + i;
            if (c < p.d) {
                out[ob + c] = acc[i] / l;
            }
        }
    }
}
