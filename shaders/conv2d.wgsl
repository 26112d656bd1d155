// conv2d.wgsl — NHWC 2-D convolution as an implicit GEMM with fused bias and
// residual (ops/conv2d.rs). y[p, co] = Σ_k im2col(x)[p, k] · W[co, k] + bias[co]
// (+ res[p, co]) over output pixels p = (b, oy, ox) and k = (ky, kx, ci).
// Bindings: 0 params, 1 W: array<u32> (rows n0..n0+rows, any W_<DTYPE>),
// 2 x: array<f32> [B, H, W, Cin], 3 y: array<f32> [B, OH, OW, Cout],
// 4 bias: array<f32> [Cout], 5 res: array<f32> [B, OH, OW, Cout] (x when absent).
// Dispatch: (ceil(rows/32), ceil(m/32)) workgroups of 16×16, m = B·OH·OW;
// each thread computes a 2×2 block of a 32×32 output tile; K advances 32 at
// a time with the weight tile dequantized and the x tile gathered (im2col on
// the fly, zero padding) into workgroup memory. f32 accumulation (MATMUL
// tolerance in the parity registry).

const T: u32 = 32u;

struct Params {
    m: u32,
    n: u32,       // Cout
    k: u32,       // kh·kw·Cin
    n0: u32,      // first weight row of this chunk
    rows: u32,    // weight rows in this chunk
    has_res: u32,
    h: u32,
    w: u32,
    cin: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;

#include "common/weights.wgsl"

var<workgroup> xs: array<f32, 1056>;  // [32][33]
var<workgroup> ws: array<f32, 1056>;  // [32][33]

// im2col(x)[pixel, kk] for the pixel's (b, oy, ox) base; zero outside.
fn gather(b: u32, oy: u32, ox: u32, kk: u32) -> f32 {
    let ci = kk % p.cin;
    let t = kk / p.cin;
    let iy = i32(oy * p.stride + t / p.kw) - i32(p.pad);
    let ix = i32(ox * p.stride + t % p.kw) - i32(p.pad);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[((b * p.h + u32(iy)) * p.w + u32(ix)) * p.cin + ci];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * T;
    let m0 = wid.y * T;
    let lr = lid / 8u;        // tile row loaded by this thread
    let lg = lid % 8u;        // group of 4 along K loaded by this thread
    let xm = m0 + lr;
    let pix = xm % (p.oh * p.ow);
    let b = xm / (p.oh * p.ow);
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var k0 = 0u; k0 < p.k; k0 += T) {
        let g = k0 / 4u + lg;
        var xv = vec4<f32>(0.0);
        if (xm < p.m) {
            for (var i = 0u; i < 4u; i++) {
                let kk = 4u * g + i;
                if (kk < p.k) {
                    xv[i] = gather(b, oy, ox, kk);
                }
            }
        }
        var wv = vec4<f32>(0.0);
        if (r0 + lr < p.rows && 4u * g < p.k) {
            wv = w4(r0 + lr, p.k, g);
        }
        for (var i = 0u; i < 4u; i++) {
            xs[lr * 33u + lg * 4u + i] = xv[i];
            ws[lr * 33u + lg * 4u + i] = wv[i];
        }
        workgroupBarrier();
        let tm = lid3.y * 2u;
        let tn = lid3.x * 2u;
        for (var kk = 0u; kk < T; kk++) {
            let a0 = xs[tm * 33u + kk];
            let a1 = xs[(tm + 1u) * 33u + kk];
            let b0 = ws[tn * 33u + kk];
            let b1 = ws[(tn + 1u) * 33u + kk];
            acc[0] += a0 * b0;
            acc[1] += a0 * b1;
            acc[2] += a1 * b0;
            acc[3] += a1 * b1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 2u; i++) {
        for (var j = 0u; j < 2u; j++) {
            let m = m0 + lid3.y * 2u + i;
            let r = r0 + lid3.x * 2u + j;
            if (m < p.m && r < p.rows) {
                let o = m * p.n + p.n0 + r;
                var v = acc[i * 2u + j] + bias[p.n0 + r];
                if (p.has_res != 0u) {
                    v += res[o];
                }
                y[o] = v;
            }
        }
    }
}
