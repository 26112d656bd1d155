// common/tile32.wgsl — the 32×32 output tile of the tiled GEMMs (mul_mat.wgsl,
// conv2d.wgsl's `main`): both operand tiles staged in workgroup memory
// ([32][33], padded against bank conflicts) by the 256 invocations of a 16×16
// workgroup (row lr, group of 4 along K lg), each invocation then
// accumulating a 2×2 output block over the tile's 32 K. Callers put the
// barriers around tile_mac.

var<workgroup> xs: array<f32, 1056>;  // [32][33]
var<workgroup> ws: array<f32, 1056>;  // [32][33]

// Stores this invocation's 4 x values and 4 weights (row lr, group lg).
fn tile_store(lr: u32, lg: u32, xv: vec4<f32>, wv: vec4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        xs[lr * 33u + lg * 4u + i] = xv[i];
        ws[lr * 33u + lg * 4u + i] = wv[i];
    }
}

// acc += x rows tm, tm+1 times weight rows tn, tn+1 over the staged 32 K
// (acc = [x0·w0, x0·w1, x1·w0, x1·w1]; a vector, not an array, so drivers
// keep it in registers).
fn tile_mac(tm: u32, tn: u32, acc: vec4<f32>) -> vec4<f32> {
    var r = acc;
    for (var kk = 0u; kk < 32u; kk++) {
        let a0 = xs[tm * 33u + kk];
        let a1 = xs[(tm + 1u) * 33u + kk];
        let b0 = ws[tn * 33u + kk];
        let b1 = ws[(tn + 1u) * 33u + kk];
        r += vec4<f32>(a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    }
    return r;
}
