// common/tile64.wgsl — the 64×64 output tile of the large GEMMs on GPUs
// (mul_mat.wgsl TILE64, mul_mat_back.wgsl INPUT_GRAD + TILE64): both operand
// tiles staged in workgroup memory as [64][17] (16 along the reduction,
// padded), and a 16×16 workgroup in which invocation (tx, ty) accumulates
// rows ty + 16i × columns tx + 16j (conflict-free reads, coalesced stores).
// Callers stage the tiles and put the barriers around tile64_mac.

var<workgroup> xs: array<f32, 1088>;  // [64][17]
var<workgroup> ws: array<f32, 1088>;  // [64][17]

// Stores this invocation's 4 x values and 4 weights (row lr, group lg of
// 4 along the reduction).
fn tile64_store(lr: u32, lg: u32, xv: vec4<f32>, wv: vec4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        xs[lr * 17u + lg * 4u + i] = xv[i];
        ws[lr * 17u + lg * 4u + i] = wv[i];
    }
}

// Rows ty, ty + 16, ty + 32, ty + 48 of the thread's block, each a vec4 over
// columns tx + 16j. Held in a struct of vectors (no arrays: drivers keep
// dynamically indexed private arrays in memory, which made this tile 8×
// slower on NVIDIA's Vulkan driver).
struct Acc64 {
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
}

fn tile64_mac(tx: u32, ty: u32, acc: Acc64) -> Acc64 {
    var r = acc;
    for (var kk = 0u; kk < 16u; kk++) {
        let b = vec4<f32>(ws[tx * 17u + kk], ws[(tx + 16u) * 17u + kk],
                          ws[(tx + 32u) * 17u + kk], ws[(tx + 48u) * 17u + kk]);
        r.a0 += xs[ty * 17u + kk] * b;
        r.a1 += xs[(ty + 16u) * 17u + kk] * b;
        r.a2 += xs[(ty + 32u) * 17u + kk] * b;
        r.a3 += xs[(ty + 48u) * 17u + kk] * b;
    }
    return r;
}

// Row i (0..3) of the block.
fn tile64_row(acc: Acc64, i: u32) -> vec4<f32> {
    switch i {
        case 0u: { return acc.a0; }
        case 1u: { return acc.a1; }
        case 2u: { return acc.a2; }
        default: { return acc.a3; }
    }
}
