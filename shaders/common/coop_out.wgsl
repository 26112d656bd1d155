// common/coop_out.wgsl — one 16 × 16 cooperative-matrix result of the
// tensor-core GEMMs (mul_mat_coop.wgsl, mul_mat_coop_half.wgsl) written
// through the subgroup's 16 × 16 f32 staging tile at Cs[st]: lane l writes
// row r + l / 2, columns col + (l % 2)·8 .. + 8 of the dispatch, inside m
// and cols, plus the residual. Needs the including kernel's p (m, cols, n,
// has_res), out_n0() (the first output column, n0 or a split-K partial's), Cs,
// y and res; every invocation of the workgroup calls it (its barriers).
fn out_edge(c: coop_mat16x16<f32, C>, st: u32, r: u32, col: u32, lane: u32) {
    coopStoreT(c, &Cs[st], 16u);
    workgroupBarrier();
    let row = r + lane / 2u;
    let c0 = col + (lane % 2u) * 8u;
    if (row < p.m) {
        for (var j = 0u; j < 8u; j++) {
            if (c0 + j < p.cols) {
                let o = row * p.n + out_n0() + c0 + j;
                var v = Cs[st + (lane / 2u) * 16u + (lane % 2u) * 8u + j];
                if (p.has_res != 0u) {
                    v += res[o];
                }
                y[o] = v;
            }
        }
    }
    workgroupBarrier();
}
