// common/broadcast.wgsl — the CPU-adapter kernels' weight sharing
// (common/conv2d_lanes.wgsl, spatial_attention_lanes.wgsl): lanes 0..3 or
// 4..7 of a subgroup each load one value, and every lane gets all four.
// Call from uniform control flow, with SUBGROUPS.

fn bcast_lo(v: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u),
                     subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}

fn bcast_hi(v: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                     subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}
