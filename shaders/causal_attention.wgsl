// causal_attention.wgsl — causal GQA attention over whole sequences, with no
// KV cache, and its backward (ops/causal_attention.rs). Rows are `t` tokens:
// `t / seq` sequences of `seq` tokens, each token attending to the tokens of
// its own sequence up to itself. q, o, do [t, hq, d]; k, v, dk, dv
// [t, hkv, d]; stats [t, hq, 2] = (logsumexp of the scaled scores, D = do·o).
// Query head h reads kv head h / (hq / hkv). Softmax is recomputed, never
// stored: no [t, t] matrix exists.
//
// Entries (one define each); invocations own (row, head, 32-wide block of d):
//   FWD   o = softmax(scale·q·kᵀ)·v, online softmax over the keys
//         bindings 1 q, 2 k, 3 v, 4 -, 5 -, 6 o
//   STATS (row, head): lse and D      bindings 1 q, 2 k, 3 v, 4 o, 5 do, 6 stats
//   DQ    dq = scale·Σ_j p·(do·v_j − D)·k_j          4 do, 5 stats, 6 dq
//   DK    dk_j = scale·Σ_{h in group, i ≥ j} p·(do_i·v_j − D_i)·q_i
//   DV    dv_j = Σ_{h in group, i ≥ j} p·do_i
// Inputs that an entry does not read are bound to q. d is a multiple of 4;
// rows are read as vec4. Dispatch: 64 invocations per workgroup, folded by
// ops::grid. f32 accumulation.

struct Params {
    t: u32,
    hq: u32,
    hkv: u32,
    d: u32,
    seq: u32,
    scale: f32,
}

const DB: u32 = 8u;  // vec4s of d per invocation (32 floats: lavapipe-safe)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
#if STATS
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> stats_out: array<f32>;
#else
@group(0) @binding(5) var<storage, read> st: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;
#endif

fn qk(qb: u32, kb: u32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < p.d / 4u; c++) {
        s += dot(q[qb + c], k[kb + c]);
    }
    return s * p.scale;
}

// do_i · v_j (do is binding 4 in the backward entries).
fn dov(ob: u32, vb: u32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < p.d / 4u; c++) {
        s += dot(a4[ob + c], v[vb + c]);
    }
    return s;
}

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 64u + lid;
}

#if STATS
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = index(wid, nwg, lid);
    let h = idx % p.hq;
    let i = idx / p.hq;
    if (i >= p.t) {
        return;
    }
    let d4 = p.d / 4u;
    let kh = h / (p.hq / p.hkv);
    let qb = (i * p.hq + h) * d4;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = (i / p.seq) * p.seq; j <= i; j++) {
        let sc = qk(qb, (j * p.hkv + kh) * d4);
        let mn = max(m, sc);
        l = l * exp(m - mn) + exp(sc - mn);
        m = mn;
    }
    var dd = 0.0;
    for (var c = 0u; c < d4; c++) {
        dd += dot(a4[qb + c], b4[qb + c]);
    }
    stats_out[2u * (i * p.hq + h)] = m + log(l);
    stats_out[2u * (i * p.hq + h) + 1u] = dd;
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let d4 = p.d / 4u;
    let nb = (d4 + DB - 1u) / DB;
    let idx = index(wid, nwg, lid);
    let b = idx % nb;
    let rest = idx / nb;
    let c0 = b * DB;
    let cn = min(DB, d4 - c0);
    let grp = p.hq / p.hkv;
    var acc: array<vec4<f32>, DB>;
#if KEYS
    // Invocation = (key row j, kv head kh, block b).
    let kh = rest % p.hkv;
    let j = rest / p.hkv;
    if (j >= p.t) {
        return;
    }
    let kb = (j * p.hkv + kh) * d4;
    let end = (j / p.seq + 1u) * p.seq;
    for (var hh = 0u; hh < grp; hh++) {
        let h = kh * grp + hh;
        for (var i = j; i < end; i++) {
            let qb = (i * p.hq + h) * d4;
            let si = 2u * (i * p.hq + h);
            let pr = exp(qk(qb, kb) - st[si]);
#if DK
            let ds = pr * (dov(qb, kb) - st[si + 1u]) * p.scale;
            for (var c = 0u; c < cn; c++) {
                acc[c] += ds * q[qb + c0 + c];
            }
#else
            for (var c = 0u; c < cn; c++) {
                acc[c] += pr * a4[qb + c0 + c];
            }
#endif
        }
    }
    for (var c = 0u; c < cn; c++) {
        out[kb + c0 + c] = acc[c];
    }
#else
    // Invocation = (query row i, head h, block b).
    let h = rest % p.hq;
    let i = rest / p.hq;
    if (i >= p.t) {
        return;
    }
    let kh = h / grp;
    let qb = (i * p.hq + h) * d4;
#if FWD
    var m = -3.0e38;
    var l = 0.0;
    for (var j = (i / p.seq) * p.seq; j <= i; j++) {
        let kb = (j * p.hkv + kh) * d4;
        let sc = qk(qb, kb);
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let pr = exp(sc - mn);
        l = l * corr + pr;
        for (var c = 0u; c < cn; c++) {
            acc[c] = acc[c] * corr + pr * v[kb + c0 + c];
        }
        m = mn;
    }
    for (var c = 0u; c < cn; c++) {
        out[qb + c0 + c] = acc[c] / l;
    }
#else
    let si = 2u * (i * p.hq + h);
    let lse = st[si];
    let dd = st[si + 1u];
    for (var j = (i / p.seq) * p.seq; j <= i; j++) {
        let kb = (j * p.hkv + kh) * d4;
        let pr = exp(qk(qb, kb) - lse);
        let ds = pr * (dov(qb, kb) - dd) * p.scale;
        for (var c = 0u; c < cn; c++) {
            acc[c] += ds * k[kb + c0 + c];
        }
    }
    for (var c = 0u; c < cn; c++) {
        out[qb + c0 + c] = acc[c];
    }
#endif
#endif
}
#endif
