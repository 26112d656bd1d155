// spatial_attention.wgsl — non-causal multi-head attention over spatial
// tokens from a packed QKV (ops/spatial_attention.rs).
// Bindings: 0 params, 1 qkv: array<f32> [B, T, 3C], 2 y: array<f32> [B, T, C].
// Dispatch: one workgroup of 64 per (sample, head, block of 64 queries),
// folded by ops::grid; one invocation per query. K/V of TK keys at a time are
// staged in workgroup memory; online softmax per tile (one rescale of the
// accumulator per tile), f32 throughout. HEAD_DIM_32/64/128 size the
// per-invocation registers (d ≤ that).

#if HEAD_DIM_32
const MAXD: u32 = 32u;
const TK: u32 = 32u;
#elif HEAD_DIM_64
const MAXD: u32 = 64u;
const TK: u32 = 16u;
#else
const MAXD: u32 = 128u;
const TK: u32 = 8u;
#endif

struct Params {
    t: u32,
    c: u32,
    heads: u32,
    d: u32,
    legacy: u32,
    scale: f32,
    blocks: u32,  // query blocks of 64 per (sample, head)
    batch: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> ks: array<f32, TK * MAXD>;
var<workgroup> vs: array<f32, TK * MAXD>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    // Uniform exit (the whole workgroup shares id).
    if (id >= p.batch * p.heads * p.blocks) {
        return;
    }
    let blk = id % p.blocks;
    let h = (id / p.blocks) % p.heads;
    let b = id / (p.blocks * p.heads);
    let c3 = 3u * p.c;
    var qc = h * p.d;
    var kc = p.c + h * p.d;
    var vc = 2u * p.c + h * p.d;
    if (p.legacy != 0u) {
        qc = 3u * h * p.d;
        kc = qc + p.d;
        vc = qc + 2u * p.d;
    }
    let i = blk * 64u + lid;
    let live = i < p.t;
    var q: array<f32, MAXD>;
    var acc: array<f32, MAXD>;
    for (var e = 0u; e < p.d; e++) {
        acc[e] = 0.0;
        q[e] = 0.0;
        if (live) {
            q[e] = qkv[(b * p.t + i) * c3 + qc + e] * p.scale;
        }
    }
    var m = -3.0e38;
    var l = 0.0;
    var s: array<f32, TK>;
    for (var j0 = 0u; j0 < p.t; j0 += TK) {
        // Stage TK keys and values (zeros past T).
        for (var x = lid; x < TK * p.d; x += 64u) {
            let j = j0 + x / p.d;
            let e = x % p.d;
            var kv = 0.0;
            var vv = 0.0;
            if (j < p.t) {
                let row = (b * p.t + j) * c3;
                kv = qkv[row + kc + e];
                vv = qkv[row + vc + e];
            }
            ks[(x / p.d) * MAXD + e] = kv;
            vs[(x / p.d) * MAXD + e] = vv;
        }
        workgroupBarrier();
        let nk = min(TK, p.t - j0);
        var tmax = m;
        for (var j = 0u; j < nk; j++) {
            var dot = 0.0;
            for (var e = 0u; e < p.d; e++) {
                dot += q[e] * ks[j * MAXD + e];
            }
            s[j] = dot;
            tmax = max(tmax, dot);
        }
        let corr = exp(m - tmax);
        l *= corr;
        for (var e = 0u; e < p.d; e++) {
            acc[e] *= corr;
        }
        for (var j = 0u; j < nk; j++) {
            let w = exp(s[j] - tmax);
            l += w;
            for (var e = 0u; e < p.d; e++) {
                acc[e] += w * vs[j * MAXD + e];
            }
        }
        m = tmax;
        workgroupBarrier();
    }
    if (live) {
        let inv = 1.0 / l;
        for (var e = 0u; e < p.d; e++) {
            y[(b * p.t + i) * p.c + h * p.d + e] = acc[e] * inv;
        }
    }
}
