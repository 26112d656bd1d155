// common/gemv_rows.wgsl — the decode GEMV's inner loop with XREG (m = 1,
// k % 32 == 0, subgroups; mul_mat_vec.wgsl and mul_mat_fused.wgsl): a
// subgroup's lanes stride over the 32-weight units of 4 rows at once. Each
// unit's 32 x values are loaded once into registers (`xr`, through the
// includer's xload(g): elements 4g..4g+3 of x as the kernel wants them) and
// used for all 4 rows, so x is read once per 4 rows and 4 rows' weight
// loads are in flight together. The weight decoders read x through x4,
// which here returns the registers (their g is 8·unit + a constant).

var<private> xr: array<vec4<f32>, 8>;

fn x4(m: u32, g: u32) -> vec4<f32> {
    return xr[g & 7u];
}

// Per-lane partial dot products of rows r.x .. r.w with x (reduce them with
// subgroupAdd); a row may repeat another (callers drop the repeats).
fn rows4(r: vec4<u32>, lane: u32, sgs: u32) -> vec4<f32> {
    let nu = p.k / 32u;
    var acc = vec4<f32>(0.0);
    for (var u = lane; u < nu; u += sgs) {
        for (var j = 0u; j < 8u; j++) {
            xr[j] = xload(8u * u + j);
        }
        acc += vec4<f32>(dot32(r.x, p.k, u, 0u), dot32(r.y, p.k, u, 0u), dot32(r.z, p.k, u, 0u),
                         dot32(r.w, p.k, u, 0u));
    }
    return acc;
}
