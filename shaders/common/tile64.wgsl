// common/tile64.wgsl — the 64×64 output tile of the large GEMMs on GPUs
// (mul_mat.wgsl TILE64, mul_mat_back.wgsl INPUT_GRAD + TILE64): both operand
// tiles staged in workgroup memory as [64][17] (16 along the reduction,
// padded), and a 16×16 workgroup in which invocation (tx, ty) accumulates
// rows ty + 16i × columns tx + 16j (conflict-free reads, coalesced stores).
// Callers stage the tiles and put the barriers around tile64_mac.

var<workgroup> xs: array<f32, 1088>;  // [64][17]
var<workgroup> ws: array<f32, 1088>;  // [64][17]

fn tile64_mac(tx: u32, ty: u32, acc: ptr<function, array<f32, 16>>) {
    for (var kk = 0u; kk < 16u; kk++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = xs[(ty + 16u * i) * 17u + kk];
            b[i] = ws[(tx + 16u * i) * 17u + kk];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] += a[i] * b[j];
            }
        }
    }
}
