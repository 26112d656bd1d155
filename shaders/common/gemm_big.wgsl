// common/gemm_big.wgsl — the `big` GEMM entry y[m, r] = Σ_k X[m, k]·W[r, k]
// (+ addends) for GPUs with many output tiles: conv2d.wgsl's implicit-GEMM
// convolution (X = im2col of the input; twin: conv2d.cu's conv2d_big) and
// mul_mat.wgsl's prefill GEMM (X = the activations). WG = BM·BN/32
// invocations per workgroup; a BM×BN output tile (256 rows of X × 32 of W;
// 128 × 64 with BN64; 128 × 32 and 128 invocations with BM128), 8 × 4 per
// invocation; K advances 8 at a time through two K-major workgroup buffers,
// the next slice's global loads issued before the current slice is
// multiplied (one barrier per slice). Two adjacent invocations gather a row
// of X per slice (its two 4-wide groups, one vec4 load each, so a
// subgroup's loads share memory sectors), weight rows likewise.
// The includer provides p.m, p.k, p.n, p.n0, p.rows, p.kslab, y, w4()
// (common/weights.wgsl), X's rows — `Pixel`, `Cur`, im_pixel(m), im_cur(k),
// im_next(cur, step), im_load(pixel, cur) -> vec4 (zeros past m and k;
// common/conv2d_gather.wgsl for convolutions), `res` and p.has_res (the
// residual), and big_add(m, r, acc): 4 columns of the product plus the
// includer's addend (bias, LoRA term), y = big_add + residual. With SPLITK
// (conv2d only): slab wid.z of K
// into `part`, summed by `splitk_sum` (which calls the includer's gemm_put).
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
// Pixel rows each invocation gathers per slice (2, or 1 with BN64): a
// slice's two 4-K groups of a pixel go to adjacent invocations, so a
// subgroup's loads cover half as many memory lines (pixels are Cin apart).
const NX: u32 = 2u * BM / WG;

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

// This invocation's group ag of pixel rows `row` and (NX = 2) row + WG/2.
fn put_xs(buf: u32, ag: u32, row: u32, v0: vec4<f32>, v1: vec4<f32>) {
    put_x(buf, ag, row, v0);
    if (NX > 1u) {
        put_x(buf, ag, row + WG / 2u, v1);
    }
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
    // Gathering: group ag of X rows arow (and arow + WG/2 when NX = 2), and
    // group ag of weight row arow (invocations past 2·BN load no weights).
    let arow = lid / 2u;
    let ag = lid % 2u;
    let px = im_pixel(m0 + arow);
    let px1 = im_pixel(m0 + arow + WG / 2u);
    let wrow = lid < 2u * BN;
    let wload = wrow && r0 + arow < p.rows;
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
    var xv0 = im_load(px, c0);
    var xv1 = vec4<f32>(0.0);
    if (NX > 1u) {
        xv1 = im_load(px1, c0);
    }
    var wv = vec4<f32>(0.0);
    if (wload && kb + 4u * ag < p.k) {
        wv = w4(r0 + arow, p.k, kb / 4u + ag);
    }
    put_xs(0u, ag, arow, xv0, xv1);
    if (wrow) {
        put_w(0u, ag, arow, wv);
    }
    workgroupBarrier();
    var buf = 0u;
    for (var k0 = kb; k0 < ke; k0 += BK) {
        let more = k0 + BK < ke;
        if (more) {
            let k1 = k0 + BK;
            c0 = im_next(c0, BK);
            xv0 = im_load(px, c0);
            if (NX > 1u) {
                xv1 = im_load(px1, c0);
            }
            wv = vec4<f32>(0.0);
            if (wload && k1 + 4u * ag < p.k) {
                wv = w4(r0 + arow, p.k, k1 / 4u + ag);
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
            put_xs(nb, ag, arow, xv0, xv1);
            if (wrow) {
                put_w(nb, ag, arow, wv);
            }
        }
        workgroupBarrier();
        buf ^= 1u;
    }
    let mb = m0 + tm * 8u;
    let rc = r0 + tn * 4u;
#if SPLITK
    let s = wid.z;
    put_part(s, mb, rc, a0);
    put_part(s, mb + 1u, rc, a1);
    put_part(s, mb + 2u, rc, a2);
    put_part(s, mb + 3u, rc, a3);
    put_part(s, mb + 4u, rc, a4);
    put_part(s, mb + 5u, rc, a5);
    put_part(s, mb + 6u, rc, a6);
    put_part(s, mb + 7u, rc, a7);
#else
    // Every addend loaded before the first store: y might alias them as far
    // as the compiler knows, so a load after a store waits for it.
    let b0 = big_add(mb, rc, a0);
    let b1 = big_add(mb + 1u, rc, a1);
    let b2 = big_add(mb + 2u, rc, a2);
    let b3 = big_add(mb + 3u, rc, a3);
    let b4 = big_add(mb + 4u, rc, a4);
    let b5 = big_add(mb + 5u, rc, a5);
    let b6 = big_add(mb + 6u, rc, a6);
    let b7 = big_add(mb + 7u, rc, a7);
    let q0 = big_res(mb, rc);
    let q1 = big_res(mb + 1u, rc);
    let q2 = big_res(mb + 2u, rc);
    let q3 = big_res(mb + 3u, rc);
    let q4 = big_res(mb + 4u, rc);
    let q5 = big_res(mb + 5u, rc);
    let q6 = big_res(mb + 6u, rc);
    let q7 = big_res(mb + 7u, rc);
    put4(mb, rc, b0 + q0);
    put4(mb + 1u, rc, b1 + q1);
    put4(mb + 2u, rc, b2 + q2);
    put4(mb + 3u, rc, b3 + q3);
    put4(mb + 4u, rc, b4 + q4);
    put4(mb + 5u, rc, b5 + q5);
    put4(mb + 6u, rc, b6 + q6);
    put4(mb + 7u, rc, b7 + q7);
#endif
}

#if SPLITK
// Slab s's partial sums of columns r .. r + 4 of row m (those in range).
fn put_part(s: u32, m: u32, r: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (r + j < p.rows) {
            part[(s * p.m + m) * p.rows + r + j] = v[j];
        }
    }
}
#else
// The residual of columns r .. r + 4 of row m (zeros when absent or out of
// range).
fn big_res(m: u32, r: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (p.has_res != 0u && m < p.m) {
        for (var j = 0u; j < 4u; j++) {
            if (r + j < p.rows) {
                v[j] = res[m * p.n + p.n0 + r + j];
            }
        }
    }
    return v;
}

// Output columns r .. r + 4 of row m (those in range).
fn put4(m: u32, r: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (r + j < p.rows) {
            y[m * p.n + p.n0 + r + j] = v[j];
        }
    }
}
#endif

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
