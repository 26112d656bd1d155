// causal_attention_tiled.wgsl — causal GQA attention and its backward for
// GPUs, when d ≤ 64 (ops/causal_attention.rs; same bindings and entries as
// causal_attention.wgsl, which CPU adapters and d > 64 use, plus layout
// params). With causal = 0 and q/k/v read from one packed buffer, its FWD
// entry is also the UNet's spatial self-attention on GPUs
// (ops/spatial_attention.rs).
//
// A workgroup of 64 invocations owns R = 16 rows of one sequence and one head
// (query rows and a query head for FWD / STATS / DQ; key rows and a kv head
// for KEYS), keeps them in workgroup memory, and walks the other side in
// tiles of C = 8 rows: the keys up to its last row, or the later queries of
// the group's heads. Per tile, invocation (r = lid / 4, sub = lid % 4)
// scores its row r against two of the tile's rows, the scores (or p, or ds)
// go through workgroup memory, and it accumulates vec4 columns sub, sub + 4,
// … of row r. Workgroup memory: 13.6 KB (WebGPU's default limit is 16 KB).
// The softmax is recomputed, never stored; f32 accumulation.
//
//   FWD   o = softmax(scale·q·kᵀ)·v (online softmax)   1 q, 2 k, 3 v, 6 o
//   STATS (lse, D = do·o) per (row, head)              4 o, 5 do, 6 stats
//   DQ    dq = scale·Σ_j p·(do·v_j − D)·k_j             4 do, 5 stats, 6 dq
//   KEYS+DK  dk_j = scale·Σ_{h in group, i ≥ j} p·(do_i·v_j − D_i)·q_i
//   KEYS+DV  dv_j = Σ_{h in group, i ≥ j} p·do_i
// Workgroups: (sequence, row tile, head), heads fastest, folded by ops::grid.

struct Params {
    t: u32,
    hq: u32,
    hkv: u32,
    d: u32,
    seq: u32,
    scale: f32,
    // Layouts in vec4s (row stride, head stride, base): query-shaped rows
    // (q, o, do, dq), key-shaped rows (k, dk; v and dv at base v_b), the
    // forward's output. Causal attention's are dense [t, heads, d]; the
    // UNet's spatial attention reads q, k, v from one packed qkv.
    q_rs: u32,
    q_hs: u32,
    q_b: u32,
    k_rs: u32,
    k_hs: u32,
    k_b: u32,
    v_b: u32,
    o_rs: u32,
    o_hs: u32,
    causal: u32,  // 0: every row of the sequence attends to all of it (FWD)
}

fn qi(row: u32, h: u32) -> u32 {
    return row * p.q_rs + h * p.q_hs + p.q_b;
}
fn ki(row: u32, h: u32) -> u32 {
    return row * p.k_rs + h * p.k_hs + p.k_b;
}
fn vi(row: u32, h: u32) -> u32 {
    return row * p.k_rs + h * p.k_hs + p.v_b;
}

const R: u32 = 16u;   // own rows per workgroup
const C: u32 = 8u;    // other rows per tile
const D4: u32 = 16u;  // vec4s per row at most (d ≤ 64)
const P4: u32 = 17u;  // padded row stride of the tiles (vec4s)

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

var<workgroup> ta: array<vec4<f32>, 272>;   // own rows [R][P4]
var<workgroup> ta2: array<vec4<f32>, 272>;  // DQ: do rows; DK: v rows
var<workgroup> tb: array<vec4<f32>, 136>;   // other rows [C][P4]: k (queries) / q (KEYS)
var<workgroup> tb2: array<vec4<f32>, 136>;  // v (FWD, DQ) / do (KEYS)
var<workgroup> ps: array<f32, 128>;         // [R][C] scores, p or ds
var<workgroup> tst: array<f32, 16>;         // KEYS: (lse, D) of the tile's queries

fn dot_a(r: u32, c: u32, d4: u32) -> f32 {
    var s = 0.0;
    for (var x = 0u; x < d4; x++) {
        s += dot(ta[r * P4 + x], tb[c * P4 + x]);
    }
    return s;
}

fn dot_a2(r: u32, c: u32, d4: u32) -> f32 {
    var s = 0.0;
    for (var x = 0u; x < d4; x++) {
        s += dot(ta2[r * P4 + x], tb2[c * P4 + x]);
    }
    return s;
}

#if !STATS
// out[rb + sub + 4j] = a_j / div for the columns below d4.
fn put_row(rb: u32, d4: u32, sub: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>,
           a3: vec4<f32>, div: f32) {
    if (sub < d4) {
        out[rb + sub] = a0 / div;
    }
    if (sub + 4u < d4) {
        out[rb + sub + 4u] = a1 / div;
    }
    if (sub + 8u < d4) {
        out[rb + sub + 8u] = a2 / div;
    }
    if (sub + 12u < d4) {
        out[rb + sub + 12u] = a3 / div;
    }
}
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let d4 = p.d / 4u;
    let grp = p.hq / p.hkv;
#if KEYS
    let nh = p.hkv;
#else
    let nh = p.hq;
#endif
    let tps = (p.seq + R - 1u) / R;
    let wg = wid.x + wid.y * nwg.x;
    let h = wg % nh;
    let s = wg / nh / tps;
    if (s >= p.t / p.seq) {
        return;
    }
    let s0 = s * p.seq;
    let send = s0 + p.seq;
    let r0 = s0 + ((wg / nh) % tps) * R;
    let rend = min(r0 + R, send);
    let r = lid / 4u;
    let sub = lid % 4u;
    let row = r0 + r;
    // Columns sub, sub + 4, sub + 8, sub + 12 of row r (vectors, not an
    // array: drivers keep dynamically indexed private arrays in memory).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    // Own rows (zero past the sequence or past d).
    for (var e = lid; e < R * D4; e += 64u) {
        let rr = r0 + e / D4;
        let x = e % D4;
        var a = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        if (rr < rend && x < d4) {
#if KEYS
            a = k[ki(rr, h) + x];
#if DK
            a2 = v[vi(rr, h) + x];
#endif
#else
            a = q[qi(rr, h) + x];
#if DQ
            a2 = a4[qi(rr, h) + x];
#endif
#endif
        }
        ta[(e / D4) * P4 + x] = a;
        ta2[(e / D4) * P4 + x] = a2;
    }

#if KEYS
    for (var hh = 0u; hh < grp; hh++) {
        let qh = h * grp + hh;
        for (var i0 = r0; i0 < send; i0 += C) {
            workgroupBarrier();
            for (var e = lid; e < C * D4; e += 64u) {
                let i = i0 + e / D4;
                let x = e % D4;
                var b = vec4<f32>(0.0);
                var b2 = vec4<f32>(0.0);
                if (i < send && x < d4) {
                    b = q[qi(i, qh) + x];
                    b2 = a4[qi(i, qh) + x];
                }
                tb[(e / D4) * P4 + x] = b;
                tb2[(e / D4) * P4 + x] = b2;
            }
            if (lid < 2u * C) {
                let i = i0 + lid / 2u;
                var sv = 0.0;
                if (i < send) {
                    sv = st[2u * (i * p.hq + qh) + lid % 2u];
                }
                tst[lid] = sv;
            }
            workgroupBarrier();
            for (var u = 0u; u < 2u; u++) {
                let c = sub * 2u + u;
                let i = i0 + c;
                var w = 0.0;
                if (row < rend && i >= row && i < send) {
                    let pr = exp(dot_a(r, c, d4) * p.scale - tst[2u * c]);
#if DK
                    w = pr * (dot_a2(r, c, d4) - tst[2u * c + 1u]) * p.scale;
#else
                    w = pr;
#endif
                }
                ps[r * C + c] = w;
            }
            workgroupBarrier();
            for (var c = 0u; c < C; c++) {
                let w = ps[r * C + c];
                let o = c * P4 + sub;
#if DK
                acc0 += w * tb[o];
                acc1 += w * tb[o + 4u];
                acc2 += w * tb[o + 8u];
                acc3 += w * tb[o + 12u];
#else
                acc0 += w * tb2[o];
                acc1 += w * tb2[o + 4u];
                acc2 += w * tb2[o + 8u];
                acc3 += w * tb2[o + 12u];
#endif
            }
        }
    }
    if (row < rend) {
        put_row(ki(row, h), d4, sub, acc0, acc1, acc2, acc3, 1.0);
    }
#else
    let kh = h / grp;
    // Keys up to the tile's last row (causal), or the whole sequence.
    let last = select(rend - 1u, send - 1u, p.causal == 0u);
#if DQ
    var lse = 0.0;
    var dd = 0.0;
    if (row < rend) {
        lse = st[2u * (row * p.hq + h)];
        dd = st[2u * (row * p.hq + h) + 1u];
    }
#else
    var m = -3.0e38;
    var l = 0.0;
#endif
    for (var j0 = s0; j0 <= last; j0 += C) {
        workgroupBarrier();
        for (var e = lid; e < C * D4; e += 64u) {
            let j = j0 + e / D4;
            let x = e % D4;
            var b = vec4<f32>(0.0);
            var b2 = vec4<f32>(0.0);
            if (j <= last && x < d4) {
                b = k[ki(j, kh) + x];
#if !STATS
                b2 = v[vi(j, kh) + x];
#endif
            }
            tb[(e / D4) * P4 + x] = b;
            tb2[(e / D4) * P4 + x] = b2;
        }
        workgroupBarrier();
        for (var u = 0u; u < 2u; u++) {
            let c = sub * 2u + u;
            let live = row < rend && j0 + c <= select(row, last, p.causal == 0u);
#if DQ
            var w = 0.0;
            if (live) {
                let pr = exp(dot_a(r, c, d4) * p.scale - lse);
                w = pr * (dot_a2(r, c, d4) - dd) * p.scale;
            }
#else
            var w = -3.0e38;
            if (live) {
                w = dot_a(r, c, d4) * p.scale;
            }
#endif
            ps[r * C + c] = w;
        }
        workgroupBarrier();
#if DQ
        for (var c = 0u; c < C; c++) {
            let w = ps[r * C + c];
            let o = c * P4 + sub;
            acc0 += w * tb[o];
            acc1 += w * tb[o + 4u];
            acc2 += w * tb[o + 8u];
            acc3 += w * tb[o + 12u];
        }
#else
        var tmax = -3.0e38;
        for (var c = 0u; c < C; c++) {
            tmax = max(tmax, ps[r * C + c]);
        }
        let mn = max(m, tmax);
        let corr = exp(m - mn);
        l *= corr;
#if FWD
        acc0 *= corr;
        acc1 *= corr;
        acc2 *= corr;
        acc3 *= corr;
#endif
        for (var c = 0u; c < C; c++) {
            let sc = ps[r * C + c];
            if (sc > -1.0e38) {
                let pr = exp(sc - mn);
                l += pr;
#if FWD
                let o = c * P4 + sub;
                acc0 += pr * tb2[o];
                acc1 += pr * tb2[o + 4u];
                acc2 += pr * tb2[o + 8u];
                acc3 += pr * tb2[o + 12u];
#endif
            }
        }
        m = mn;
#endif
    }
    if (row < rend) {
#if STATS
        if (sub == 0u) {
            let qb = qi(row, h);
            var dsum = 0.0;
            for (var x = 0u; x < d4; x++) {
                dsum += dot(a4[qb + x], b4[qb + x]);
            }
            stats_out[2u * (row * p.hq + h)] = m + log(l);
            stats_out[2u * (row * p.hq + h) + 1u] = dsum;
        }
#elif FWD
        put_row(row * p.o_rs + h * p.o_hs, d4, sub, acc0, acc1, acc2, acc3, l);
#else
        put_row(qi(row, h), d4, sub, acc0, acc1, acc2, acc3, 1.0);
#endif
    }
#endif
}
