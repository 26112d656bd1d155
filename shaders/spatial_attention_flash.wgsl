// spatial_attention_flash.wgsl — the UNet's non-causal attention over spatial
// tokens on GPUs (ops/spatial_attention.rs; twin: spatial_attention.cu's
// spatial_attention_flash), for d ≤ 32 (or ≤ 64 with D64) and d % 4 == 0.
// Bindings: 0 params, 1 qkv: array<vec4<f32>> (packed [B, T, 3C], read by
// strides), 2 y: array<vec4<f32>> [B, T, C].
//
// A workgroup of 256 owns BR = 64 queries of one (sample, head), their q in
// workgroup memory (dim-major), and walks the keys BC = 32 at a time; the
// [T, T] scores are never stored; each tile's k and v are loaded into
// registers during the tile before (their latency behind its arithmetic).
// Per key tile, four phases between barriers (and one inside (3)):
// (1) stage k (dim-major); (2) scores: invocation (ty, tx) computes
// queries 4ty..4ty+3 × keys 2tx, 2tx+1, scaled, into `ps` (key-major);
// (3) four invocations per query update its online softmax (running max
// and sum in registers, the rescale factor to `alpha`) while all stage v
// (row-major); (4) invocation (rg, cg) rescales and accumulates RT queries
// × 4 output dims (cg) of p·v. Workgroup memory 22.8 KB (D64: 34.8 KB).
// f32 throughout, exp of (score − running max) ≤ 0. SPLIT (too few
// (sample, head, query block) workgroups to fill the GPU): workgroup
// (…, split) walks only keys [split·kchunk, +kchunk) and leaves its
// unnormalised output, max and sum in `part`; `combine` merges the splits.

struct Params {
    t: u32,
    heads: u32,
    d: u32,
    scale: f32,
    rs: u32,      // vec4s per token of qkv (3C/4)
    hs: u32,      // vec4s between heads
    q_b: u32,     // vec4 offsets of head 0's q, k, v
    k_b: u32,
    v_b: u32,
    o_rs: u32,    // vec4s per token of y (C/4)
    blocks: u32,  // query blocks of BR per (sample, head)
    batch: u32,
    splits: u32,  // key splits (SPLIT: partials into `part`, then `combine`)
    kchunk: u32,  // keys per split (a multiple of BC)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
#if SPLIT
// Per (sample, head, split, query): d/4 vec4s of the unnormalised output,
// then (after all of them, at ml0()) one (running max, sum, 0, 0).
@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>;

fn ml0() -> u32 {
    return p.batch * p.heads * p.splits * p.t * (p.d / 4u);
}
#endif

const BR: u32 = 64u;
const BC: u32 = 32u;
#if D64
const DM: u32 = 64u;
#else
const DM: u32 = 32u;
#endif
const CW: u32 = DM / 4u;          // output vec4 columns
const RT: u32 = BR * CW / 256u;   // queries per invocation in phase 4 (2 or 4)

var<workgroup> qs: array<vec4<f32>, DM * 16u>;  // [DM][BR/4]: q, dim-major
var<workgroup> kv: array<vec4<f32>, DM * 8u>;   // k [DM][BC] scalars, or v [BC][CW]
var<workgroup> ps: array<vec4<f32>, 512>;   // [BC][BR/4] scores, then p
var<workgroup> alpha: array<f32, 64>;       // per query: rescale, then 1/sum
var<workgroup> red_m: array<f32, 256>;      // phase 3: [part][query] partial maxima
var<workgroup> red_s: array<f32, 256>;      //          and partial sums

// Item i (< BC·CW) of a key tile from k0: with `dim_major` (k) key i % BC,
// vec4 i / BC of the head's dims, else (v) key i / CW, vec4 i % CW; zeros
// past the tokens and the head's dims.
fn kv_load(tok0: u32, h: u32, off: u32, k0: u32, i: u32, dim_major: bool) -> vec4<f32> {
    let key = select(i / CW, i % BC, dim_major);
    let x = select(i % CW, i / BC, dim_major);
    if (x < p.d / 4u && k0 + key < p.t) {
        return qkv[(tok0 + k0 + key) * p.rs + h * p.hs + off + x];
    }
    return vec4<f32>(0.0);
}

// k item i (kv_load's dim-major order) into kv as [DM][BC] scalars.
fn put_k(i: u32, v: vec4<f32>) {
    let key = i % BC;
    let x = i / BC;
    for (var c = 0u; c < 4u; c++) {
        let e = (4u * x + c) * BC + key;
        kv[e / 4u][e % 4u] = v[c];
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wgi = wid.x + wid.y * nwg.x;
    if (wgi >= p.batch * p.heads * p.blocks * p.splits) {
        return;
    }
    // This workgroup's keys: split sp of the (sample, head)'s.
    let sp = wgi % p.splits;
    let id = wgi / p.splits;
    let kb = sp * p.kchunk;
    let ke = min(p.t, kb + p.kchunk);
    let blk = id % p.blocks;
    let h = (id / p.blocks) % p.heads;
    let b = id / (p.blocks * p.heads);
    let r0 = blk * BR;
    let d4 = p.d / 4u;
    let tok0 = b * p.t;
    // Stage q: vec4 x of query row lid % 64, for x = lid / 64, +4, ...
    for (var x = lid / BR; x < CW; x += 256u / BR) {
        let r = lid % BR;
        var v = vec4<f32>(0.0);
        if (x < d4 && r0 + r < p.t) {
            v = qkv[(tok0 + r0 + r) * p.rs + h * p.hs + p.q_b + x];
        }
        for (var c = 0u; c < 4u; c++) {
            qs[(4u * x + c) * (BR / 4u) + r / 4u][r % 4u] = v[c];
        }
    }
    // Phase 2 mapping.
    let ty = lid / 16u;
    let tx = lid % 16u;
    // Phase 4 mapping.
    let cg = lid % CW;
    let rg = lid / CW;
    var o0 = vec4<f32>(0.0);
    var o1 = vec4<f32>(0.0);
    var o2 = vec4<f32>(0.0);
    var o3 = vec4<f32>(0.0);
    // Phase 3: query lid % 64's running max and sum (the same in its 4
    // invocations).
    var m = -3.0e38;
    var l = 0.0;
    // K and V of the first key tile in registers; each tile's loads of the
    // next are issued before its arithmetic (latency hidden behind it).
    var kr0 = kv_load(tok0, h, p.k_b, kb, lid, true);
    var vr0 = kv_load(tok0, h, p.v_b, kb, lid, false);
#if D64
    var kr1 = kv_load(tok0, h, p.k_b, kb, lid + 256u, true);
    var vr1 = kv_load(tok0, h, p.v_b, kb, lid + 256u, false);
#endif
    for (var k0 = kb; k0 < ke; k0 += BC) {
        // (1) k of keys k0 .. k0 + BC, dim-major.
        put_k(lid, kr0);
#if D64
        put_k(lid + 256u, kr1);
#endif
        workgroupBarrier();
        let kn = k0 + BC;
        if (kn < ke) {
            kr0 = kv_load(tok0, h, p.k_b, kn, lid, true);
#if D64
            kr1 = kv_load(tok0, h, p.k_b, kn, lid + 256u, true);
#endif
        }
        // (2) scores of queries 4ty.. × keys 2tx, 2tx + 1.
        var s0 = vec2<f32>(0.0);
        var s1 = vec2<f32>(0.0);
        var s2 = vec2<f32>(0.0);
        var s3 = vec2<f32>(0.0);
        for (var kk = 0u; kk < p.d; kk++) {
            let q4 = qs[kk * (BR / 4u) + ty];
            let kq = kv[(kk * BC + 2u * tx) / 4u];
            let k2 = select(kq.xy, kq.zw, (tx & 1u) == 1u);
            s0 += q4.x * k2;
            s1 += q4.y * k2;
            s2 += q4.z * k2;
            s3 += q4.w * k2;
        }
        for (var j = 0u; j < 2u; j++) {
            var sv = vec4<f32>(s0[j], s1[j], s2[j], s3[j]) * p.scale;
            if (k0 + 2u * tx + j >= p.t) {
                sv = vec4<f32>(-3.0e38);
            }
            ps[(2u * tx + j) * (BR / 4u) + ty] = sv;
        }
        workgroupBarrier();
        // (3) online softmax, 4 invocations per query: query q = lid % BR
        // takes keys part·8 .. +8 (part = lid / BR); the partial maxima,
        // then the partial sums, merge through workgroup memory. Everyone
        // then stages v row-major.
        let q = lid % BR;
        let part = lid / BR;
        let e0 = part * (BC / 4u) * (BR / 4u) + q / 4u;
        var pm = -3.0e38;
        for (var j = 0u; j < BC / 4u; j++) {
            pm = max(pm, ps[e0 + j * (BR / 4u)][q % 4u]);
        }
        red_m[lid] = pm;
        workgroupBarrier();
        let mx = max(max(m, max(red_m[q], red_m[q + BR])),
                     max(red_m[q + 2u * BR], red_m[q + 3u * BR]));
        let a = exp(m - mx);
        var sum = 0.0;
        for (var j = 0u; j < BC / 4u; j++) {
            let e = e0 + j * (BR / 4u);
            let pv = exp(ps[e][q % 4u] - mx);
            ps[e][q % 4u] = pv;
            sum += pv;
        }
        red_s[lid] = sum;
        m = mx;
        if (part == 0u) {
            alpha[q] = a;
        }
        kv[lid] = vr0;
#if D64
        kv[lid + 256u] = vr1;
#endif
        if (kn < ke) {
            vr0 = kv_load(tok0, h, p.v_b, kn, lid, false);
#if D64
            vr1 = kv_load(tok0, h, p.v_b, kn, lid + 256u, false);
#endif
        }
        workgroupBarrier();
        // Every invocation of query q keeps the same running sum.
        l = l * a + (((red_s[q] + red_s[q + BR]) + red_s[q + 2u * BR]) + red_s[q + 3u * BR]);
        // (4) o = o·alpha + p·v for queries rg·RT .. + RT, dims 4cg .. + 4.
#if D64
        o0 *= alpha[4u * rg];
        o1 *= alpha[4u * rg + 1u];
        o2 *= alpha[4u * rg + 2u];
        o3 *= alpha[4u * rg + 3u];
        for (var j = 0u; j < BC; j++) {
            let pj = ps[j * (BR / 4u) + rg];
            let v = kv[j * CW + cg];
            o0 += pj.x * v;
            o1 += pj.y * v;
            o2 += pj.z * v;
            o3 += pj.w * v;
        }
#else
        o0 *= alpha[2u * rg];
        o1 *= alpha[2u * rg + 1u];
        for (var j = 0u; j < BC; j++) {
            let pq = ps[j * (BR / 4u) + rg / 2u];
            let pj = select(pq.xy, pq.zw, (rg & 1u) == 1u);
            let v = kv[j * CW + cg];
            o0 += pj.x * v;
            o1 += pj.y * v;
        }
#endif
        workgroupBarrier();
    }
#if SPLIT
    // Unnormalised: `combine` weighs the splits by their maxima and sums.
    let base = ((b * p.heads + h) * p.splits + sp) * p.t + r0;
    if (lid < BR && r0 + lid < p.t) {
        part[ml0() + base + lid] = vec4<f32>(m, l, 0.0, 0.0);
    }
#else
    if (lid < BR) {
        alpha[lid] = 1.0 / l;
    }
#endif
    workgroupBarrier();
    if (cg < d4) {
        for (var i = 0u; i < RT; i++) {
            let r = rg * RT + i;
            if (r0 + r < p.t) {
                var o = o0;
                switch i {
                    case 1u: { o = o1; }
                    case 2u: { o = o2; }
                    case 3u: { o = o3; }
                    default: {}
                }
#if SPLIT
                part[(base + r) * d4 + cg] = o;
#else
                y[(tok0 + r0 + r) * p.o_rs + h * d4 + cg] = o * alpha[r];
#endif
            }
        }
    }
}

#if SPLIT
// y = Σ_s o_s·e^(m_s − m) / Σ_s l_s·e^(m_s − m), m = max_s m_s: an
// invocation per (sample, token, head, vec4 of the head's dims).
@compute @workgroup_size(256)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let d4 = p.d / 4u;
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.batch * p.t * p.heads * d4) {
        return;
    }
    let x = i % d4;
    let h = (i / d4) % p.heads;
    let tok = (i / (d4 * p.heads)) % p.t;
    let b = i / (d4 * p.heads * p.t);
    let first = (b * p.heads + h) * p.splits * p.t + tok;
    var m = -3.0e38;
    for (var s = 0u; s < p.splits; s++) {
        m = max(m, part[ml0() + first + s * p.t].x);
    }
    var l = 0.0;
    var o = vec4<f32>(0.0);
    for (var s = 0u; s < p.splits; s++) {
        let ml = part[ml0() + first + s * p.t];
        let w = exp(ml.x - m);
        l += ml.y * w;
        o += part[(first + s * p.t) * d4 + x] * w;
    }
    y[(b * p.t + tok) * p.o_rs + h * d4 + x] = o / l;
}
#endif
