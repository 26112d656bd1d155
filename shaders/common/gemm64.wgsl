// common/gemm64.wgsl — the `main` entry of a 64×64-tile GEMM y[m, r] =
// Σ_k x[m, k]·W[r, k] over this chunk's weight rows (common/tile64.wgsl), for
// kernels whose x rows and epilogue differ (mul_mat.wgsl, conv2d.wgsl TILE64).
// The includer provides p.m, p.k, p.rows, w4() (common/weights.wgsl),
// x_group(m, g) -> vec4 (group g of 4 along K of x row m, zeros past m and
// k) and gemm_put(m, r, v) (the epilogue). Dispatch (ceil(rows/64),
// ceil(m/64)) workgroups of 16×16.

#include "common/tile64.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * 64u;
    let m0 = wid.y * 64u;
    let lr = lid / 4u;        // tile row loaded by this thread
    let lg = lid % 4u;        // group of 4 along K loaded by this thread
    var acc = Acc64();
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        let g = k0 / 4u + lg;
        let xv = x_group(m0 + lr, g);
        var wv = vec4<f32>(0.0);
        if (r0 + lr < p.rows && 4u * g < p.k) {
            wv = w4(r0 + lr, p.k, g);
        }
        tile64_store(lr, lg, xv, wv);
        workgroupBarrier();
        acc = tile64_mac(lid3.x, lid3.y, acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = tile64_row(acc, i);
        for (var j = 0u; j < 4u; j++) {
            let m = m0 + lid3.y + 16u * i;
            let r = r0 + lid3.x + 16u * j;
            if (m < p.m && r < p.rows) {
                gemm_put(m, r, row[j]);
            }
        }
    }
}
