// attention_coop.wgsl — prefill attention on tensor cores (ops/attention.rs,
// `Kernel::Coop`: the opt-in low-precision mode with wgpu's cooperative
// matrices, `KILN_COOP=1` under `KILN_ACTIVATIONS=q8`; head dims ≤ 64).
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

// Keys [key][dim], values [key][dim], and the queries (first) then the
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

fn put4(is_v: bool, i: u32, v: vec4<f32>) {
    let h = vec4<f16>(v);
    if (is_v) {
        vs[i] = h.x;
        vs[i + 1u] = h.y;
        vs[i + 2u] = h.z;
        vs[i + 3u] = h.w;
    } else {
        ks[i] = h.x;
        ks[i + 1u] = h.y;
        ks[i + 2u] = h.z;
        ks[i + 3u] = h.w;
    }
}

// c + a · (the 16 × 16 block of Kᵀ at ks[o]: keys as columns).
fn qk4(a: coop_mat16x16<f16, A>, o: u32, c: coop_mat16x16<f32, C>) -> coop_mat16x16<f32, C> {
    return coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&ks[o], SP), c);
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
            put4(false, kk * SP + 4u * c, kv);
            put4(true, kk * SP + 4u * c, vv);
        }
        workgroupBarrier();
        // S = Q·Kᵀ: K's rows read as the columns of B.
        var s0 = coop_mat16x16<f32, C>();
        var s1 = coop_mat16x16<f32, C>();
        var s2 = coop_mat16x16<f32, C>();
        var s3 = coop_mat16x16<f32, C>();
        s0 = qk4(q0, 0u, s0);
        s1 = qk4(q0, 16u * SP, s1);
        s2 = qk4(q0, 32u * SP, s2);
        s3 = qk4(q0, 48u * SP, s3);
        s0 = qk4(q1, 16u, s0);
        s1 = qk4(q1, 16u * SP + 16u, s1);
        s2 = qk4(q1, 32u * SP + 16u, s2);
        s3 = qk4(q1, 48u * SP + 16u, s3);
        s0 = qk4(q2, 32u, s0);
        s1 = qk4(q2, 16u * SP + 32u, s1);
        s2 = qk4(q2, 32u * SP + 32u, s2);
        s3 = qk4(q2, 48u * SP + 32u, s3);
        s0 = qk4(q3, 48u, s0);
        s1 = qk4(q3, 16u * SP + 48u, s1);
        s2 = qk4(q3, 32u * SP + 48u, s2);
        s3 = qk4(q3, 48u * SP + 48u, s3);
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
        for (var kb16 = 0u; kb16 < 4u; kb16++) {
            let a = coopLoadT<coop_mat16x16<f16, A>>(&ps[qa + kb16 * 16u], SP);
            let vo = kb16 * 16u * SP;
            o0 = coopMultiplyAdd(a, coopLoadT<coop_mat16x16<f16, B>>(&vs[vo], SP), o0);
            o1 = coopMultiplyAdd(a, coopLoadT<coop_mat16x16<f16, B>>(&vs[vo + 16u], SP), o1);
            o2 = coopMultiplyAdd(a, coopLoadT<coop_mat16x16<f16, B>>(&vs[vo + 32u], SP), o2);
            o3 = coopMultiplyAdd(a, coopLoadT<coop_mat16x16<f16, B>>(&vs[vo + 48u], SP), o3);
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
