// common/conv2d_big.wgsl — conv2d.wgsl's `big` entry (included with BIG; the twin of
// conv2d.cu's conv2d_big): GPUs, Cin % 4 == 0, many output tiles. WG =
// BM·BN/32 invocations per workgroup; a BM×BN output tile (256 pixels × 32
// channels; 128 × 64 with BN64; 128 × 32 and 128 invocations with BM128),
// 8 pixels × 4 channels per invocation; K advances 8
// at a time through two K-major workgroup buffers, the next slice's global
// loads issued before the current slice is multiplied (one barrier per
// slice). Each invocation gathers one output pixel's im2col row through
// common/conv2d_gather.wgsl (coordinates once, a division-free cursor per
// load slot): 4 input channels of one tap are one vec4 load.
// Dispatch (ceil(rows/BN), ceil(m/BM), splits) workgroups; 18 KiB (12 KiB with
// BN64, 10 KiB with BM128) of workgroup memory.

#if BN64
const BM: u32 = 128u;
const BN: u32 = 64u;
#elif BM128
const BM: u32 = 128u;
const BN: u32 = 32u;
#else
const BM: u32 = 256u;
const BN: u32 = 32u;
#endif
const BK: u32 = 8u;
const WG: u32 = BM * BN / 32u;

// [buffer][k][pixel / 4] and [buffer][k][channel / 4]: vectors along the
// tile's pixels / channels.
var<workgroup> As: array<vec4<f32>, 2u * BK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, 2u * BK * BN / 4u>;

fn put_x(buf: u32, g: u32, row: u32, v: vec4<f32>) {
    let i = (buf * BK + 4u * g) * (BM / 4u) + row / 4u;
    let c = row % 4u;
    As[i][c] = v.x;
    As[i + BM / 4u][c] = v.y;
    As[i + BM / 2u][c] = v.z;
    As[i + 3u * BM / 4u][c] = v.w;
}

fn put_w(buf: u32, g: u32, row: u32, v: vec4<f32>) {
    let i = (buf * BK + 4u * g) * (BN / 4u) + row / 4u;
    let c = row % 4u;
    Bs[i][c] = v.x;
    Bs[i + BN / 4u][c] = v.y;
    Bs[i + BN / 2u][c] = v.z;
    Bs[i + 3u * BN / 4u][c] = v.w;
}

@compute @workgroup_size(WG)
fn big(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * BN;
    let m0 = wid.y * BM;
    // This workgroup's K slab (all of K unless split).
    let kb = wid.z * p.kslab;
    let ke = min(p.k, kb + p.kslab);
    // Gathering: pixel arow of the tile, groups ag (and ag + 1 when each
    // invocation loads two: WG = BM).
    let arow = lid % BM;
    let ag = lid / BM;
    let px = im_pixel(m0 + arow);
    let two = WG == BM;
    // Weights: row brow of the tile, group bg (invocations past 2·BN load none).
    let brow = lid % BN;
    let bg = lid / BN;
    let wload = bg < 2u && r0 + brow < p.rows;
    // Multiplying: pixels tm·8 .. +8, channels tn·4 .. +4.
    let tn = lid % (BN / 4u);
    let tm = lid / (BN / 4u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var c0 = im_cur(kb + 4u * ag);
    var c1 = im_cur(kb + 4u * (ag + 1u));
    var xv0 = im_load(px, c0);
    var xv1 = vec4<f32>(0.0);
    if (two) {
        xv1 = im_load(px, c1);
    }
    var wv = vec4<f32>(0.0);
    if (wload && kb + 4u * bg < p.k) {
        wv = w4(r0 + brow, p.k, kb / 4u + bg);
    }
    put_x(0u, ag, arow, xv0);
    if (two) {
        put_x(0u, ag + 1u, arow, xv1);
    }
    if (bg < 2u) {
        put_w(0u, bg, brow, wv);
    }
    workgroupBarrier();
    var buf = 0u;
    for (var k0 = kb; k0 < ke; k0 += BK) {
        let more = k0 + BK < ke;
        if (more) {
            let k1 = k0 + BK;
            c0 = im_next(c0, BK);
            xv0 = im_load(px, c0);
            if (two) {
                c1 = im_next(c1, BK);
                xv1 = im_load(px, c1);
            }
            wv = vec4<f32>(0.0);
            if (wload && k1 + 4u * bg < p.k) {
                wv = w4(r0 + brow, p.k, k1 / 4u + bg);
            }
        }
        for (var kk = 0u; kk < BK; kk++) {
            let ia = (buf * BK + kk) * (BM / 4u) + tm * 2u;
            let xa = As[ia];
            let xb = As[ia + 1u];
            let w = Bs[(buf * BK + kk) * (BN / 4u) + tn];
            a0 = fma(vec4<f32>(xa.x), w, a0);
            a1 = fma(vec4<f32>(xa.y), w, a1);
            a2 = fma(vec4<f32>(xa.z), w, a2);
            a3 = fma(vec4<f32>(xa.w), w, a3);
            a4 = fma(vec4<f32>(xb.x), w, a4);
            a5 = fma(vec4<f32>(xb.y), w, a5);
            a6 = fma(vec4<f32>(xb.z), w, a6);
            a7 = fma(vec4<f32>(xb.w), w, a7);
        }
        if (more) {
            let nb = buf ^ 1u;
            put_x(nb, ag, arow, xv0);
            if (two) {
                put_x(nb, ag + 1u, arow, xv1);
            }
            if (bg < 2u) {
                put_w(nb, bg, brow, wv);
            }
        }
        workgroupBarrier();
        buf ^= 1u;
    }
    let mb = m0 + tm * 8u;
    let s = wid.z;
    put_row(s, mb, r0 + tn * 4u, a0);
    put_row(s, mb + 1u, r0 + tn * 4u, a1);
    put_row(s, mb + 2u, r0 + tn * 4u, a2);
    put_row(s, mb + 3u, r0 + tn * 4u, a3);
    put_row(s, mb + 4u, r0 + tn * 4u, a4);
    put_row(s, mb + 5u, r0 + tn * 4u, a5);
    put_row(s, mb + 6u, r0 + tn * 4u, a6);
    put_row(s, mb + 7u, r0 + tn * 4u, a7);
}

// Channels r .. r + 4 of pixel m (those in range): the output, or with
// SPLITK slab s's partial sums.
fn put_row(s: u32, m: u32, r: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (r + j < p.rows) {
#if SPLITK
            part[(s * p.m + m) * p.rows + r + j] = v[j];
#else
            gemm_put(m, r + j, v[j]);
#endif
        }
    }
}

#if SPLITK
// y = Σ over slabs (in slab order) + bias (+ res): an invocation per output.
@compute @workgroup_size(256)
fn splitk_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    let n = p.m * p.rows;
    if (i >= n) {
        return;
    }
    var v = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        v += part[s * n + i];
    }
    gemm_put(i / p.rows, i % p.rows, v);
}
#endif
