// spatial_attention.wgsl — non-causal multi-head attention, in two passes:
// the UNet's spatial self-attention from a packed QKV and cross-attention of
// spatial queries over text keys/values (ops/spatial_attention.rs).
// Bindings: 0 params, then
//   partial: 1 q: array<f32>, 2 kv: array<f32> (self-attention binds the
//            packed qkv [B, T, 3C] to both; cross: q [B, T, C], kv [B, TK, 2C]),
//            3 part: array<f32> (scratch)
//   combine: 1 part (scratch, read), 2 y: array<f32> [B, T, C]
// q, k and v of head h are read by layout params: row r of sample b has its
// query at (b·t + r)·q_rs + q_b + h·q_hs, its key at (b·tk + r)·k_rs + k_b +
// h·k_hs and its value at … + v_b + h·k_hs.
// partial: one workgroup of 64 per (sample, head, block of 64 queries, chunk
// of 32 output dims, split of ks keys); one invocation per query. Keys (the
// whole head, d ≤ 160) and the chunk's 32 value dims of TK keys at a time
// are staged in workgroup memory; online softmax per tile. Each invocation
// writes (max, sum, 32 accumulators) for its split to `part`.
// combine: one invocation per output value, merging the splits.
// Why splits: llvmpipe (lavapipe) stops any loop after 65535 iterations per
// invocation (its infinite-loop guard, counted across re-entries), so no
// loop may run T·d times; each split keeps every loop under ks·d ≤ 49152.
// Each invocation holds only 32 accumulators and TK scores in registers
// (whole-head private arrays came out as NaN from LLVM 15 for d ≥ 64).

const TK: u32 = 16u;
const KD: u32 = 160u;  // ops::spatial_attention::MAX_HEAD_DIM (SD 1.5: 1280 / 8 heads)
const VD: u32 = 32u;   // output dims per workgroup
const REC: u32 = 34u;  // VD + 2: a split's record (max, sum, acc[VD])

struct Params {
    t: u32,        // queries per sample
    c: u32,
    heads: u32,
    d: u32,
    tk: u32,       // keys per sample
    scale: f32,
    blocks: u32,   // query blocks of 64 per (sample, head)
    batch: u32,
    chunks: u32,   // ceil(d / 32)
    splits: u32,   // ceil(tk / ks)
    ks: u32,       // keys per split (a multiple of TK)
    q_rs: u32,
    q_b: u32,
    q_hs: u32,
    k_rs: u32,
    k_b: u32,
    v_b: u32,
    k_hs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if COMBINE
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

var<workgroup> ks: array<f32, TK * KD>;
var<workgroup> vs: array<f32, TK * VD>;
#endif

// Record of (sample·heads + head, query i, split sp, chunk dc).
fn rec(bh: u32, i: u32, sp: u32, dc: u32) -> u32 {
    return (((bh * p.t + i) * p.splits + sp) * p.chunks + dc) * REC;
}

#if COMBINE
@compute @workgroup_size(256)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let o = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (o >= p.batch * p.t * p.c) {
        return;
    }
    // y[b, i, h·d + e]
    let col = o % p.c;
    let i = (o / p.c) % p.t;
    let b = o / (p.c * p.t);
    let h = col / p.d;
    let e = col % p.d;
    let bh = b * p.heads + h;
    var mx = -3.0e38;
    for (var sp = 0u; sp < p.splits; sp++) {
        mx = max(mx, part[rec(bh, i, sp, e / VD)]);
    }
    var l = 0.0;
    var v = 0.0;
    for (var sp = 0u; sp < p.splits; sp++) {
        let r = rec(bh, i, sp, e / VD);
        let w = exp(part[r] - mx);
        l += w * part[r + 1u];
        v += w * part[r + 2u + e % VD];
    }
    y[o] = v / l;
}
#else
@compute @workgroup_size(64)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    var id = wid.x + wid.y * nwg.x;
    // Uniform exit (the whole workgroup shares id).
    if (id >= p.batch * p.heads * p.blocks * p.chunks * p.splits) {
        return;
    }
    let sp = id % p.splits;
    id /= p.splits;
    let dc = id % p.chunks;
    id /= p.chunks;
    let blk = id % p.blocks;
    let bh = id / p.blocks;
    let h = bh % p.heads;
    let b = bh / p.heads;
    let kc = p.k_b + h * p.k_hs;
    let vc = p.v_b + h * p.k_hs;
    let e0 = dc * VD;
    let i = blk * 64u + lid;
    let live = i < p.t;
    let qrow = (b * p.t + min(i, p.t - 1u)) * p.q_rs + p.q_b + h * p.q_hs;
    var acc: array<f32, VD>;
    for (var e = 0u; e < VD; e++) {
        acc[e] = 0.0;
    }
    var m = -3.0e38;
    var l = 0.0;
    var s: array<f32, TK>;
    let kend = min(p.tk, (sp + 1u) * p.ks);
    for (var j0 = sp * p.ks; j0 < kend; j0 += TK) {
        // Stage TK keys (d dims) and this chunk's value dims (zeros past the split).
        for (var x = lid; x < TK * p.d; x += 64u) {
            let j = j0 + x / p.d;
            var kval = 0.0;
            if (j < kend) {
                kval = kv[(b * p.tk + j) * p.k_rs + kc + x % p.d];
            }
            ks[(x / p.d) * KD + x % p.d] = kval;
        }
        for (var x = lid; x < TK * VD; x += 64u) {
            let j = j0 + x / VD;
            let e = e0 + x % VD;
            var vv = 0.0;
            if (j < kend && e < p.d) {
                vv = kv[(b * p.tk + j) * p.k_rs + vc + e];
            }
            vs[x] = vv;
        }
        workgroupBarrier();
        let nk = min(TK, kend - j0);
        var tmax = m;
        for (var j = 0u; j < TK; j++) {
            var dot = 0.0;
            for (var e = 0u; e < p.d; e++) {
                dot += q[qrow + e] * ks[j * KD + e];
            }
            s[j] = dot * p.scale;
            if (j < nk) {
                tmax = max(tmax, s[j]);
            }
        }
        let corr = exp(m - tmax);
        l *= corr;
        for (var e = 0u; e < VD; e++) {
            acc[e] *= corr;
        }
        for (var j = 0u; j < TK; j++) {
            var w = 0.0;
            if (j < nk) {
                w = exp(s[j] - tmax);
            }
            l += w;
            for (var e = 0u; e < VD; e++) {
                acc[e] += w * vs[j * VD + e];
            }
        }
        m = tmax;
        workgroupBarrier();
    }
    if (live) {
        let r = rec(bh, i, sp, dc);
        part[r] = m;
        part[r + 1u] = l;
        for (var e = 0u; e < VD; e++) {
            part[r + 2u + e] = acc[e];
        }
    }
}
#endif
