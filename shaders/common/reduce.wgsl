// common/reduce.wgsl — workgroup-wide sum and max.
// Requires the including shader to declare `const WG: u32` (a power of two,
// the workgroup size). Call from uniform control flow only (barriers inside);
// every invocation gets the result.
//
// With SUBGROUPS (the adapter offers subgroup operations) each subgroup
// reduces in registers and one lane per subgroup writes a partial to
// workgroup memory at slot lid / subgroup_size (subgroups are contiguous runs
// of local_invocation_index on every Vulkan/Metal/D3D12 implementation we
// target); all invocations then add the partials in slot order, so results
// are deterministic. Without it: a shared-memory tree (log2 WG barriers).

var<workgroup> red_f: array<f32, WG>;

#if SUBGROUPS
fn wg_sum(v: f32, lid: u32) -> f32 {
    let sgs = subgroupAdd(1u);
    let s = subgroupAdd(v);
    if (lid % sgs == 0u) {
        red_f[lid / sgs] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < WG / sgs; i++) {
        t += red_f[i];
    }
    workgroupBarrier();
    return t;
}

fn wg_max(v: f32, lid: u32) -> f32 {
    let sgs = subgroupAdd(1u);
    let s = subgroupMax(v);
    if (lid % sgs == 0u) {
        red_f[lid / sgs] = s;
    }
    workgroupBarrier();
    var t = -3.0e38;
    for (var i = 0u; i < WG / sgs; i++) {
        t = max(t, red_f[i]);
    }
    workgroupBarrier();
    return t;
}
#else
fn wg_sum(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] += red_f[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = max(red_f[lid], red_f[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}
#endif
