// mul_mat_back.wgsl — the gradients of y = x · Wᵀ (ops/matmul_back.rs).
//
// INPUT_GRAD: dx[m, k] (+)= Σ_n dy[m, n] · W[n, k] with W in any W_<DTYPE>
//   layout, decoded on the fly four weights at a time (w4), so a quantized
//   base is never dequantized into memory. Each invocation owns 4 rows of dx
//   × 4 consecutive columns (16 accumulators) and walks the weight rows of
//   this chunk; a weight split across bindings is one dispatch per chunk,
//   chunks after the first add to dx (accumulate = 1). On CPU adapters a
//   chunk is walked in segments of ≤ 4096 rows (rows from `first`), one
//   dispatch each: llvmpipe cuts loops past 65535 iterations per invocation
//   (a vocabulary head has 49152 rows).
//   Bindings: 0 params, 1 W (rows n0..n0+rows), 2 dy [m, n], 3 dx [m, k].
// INPUT_GRAD + TILED (GPUs): the same product as a tiled GEMM — a 16×16
//   workgroup owns a 32(m)×32(k) tile of dx, each invocation a 2×2 block;
//   the reduction over weight rows advances 32 at a time with dy's tile and
//   the decoded weight tile (stored transposed, [k][n]) in workgroup memory
//   (common/tile32.wgsl). Grid (ceil(k/32), ceil(m/32)).
// INPUT_GRAD + TILE64 (GPUs, m and k ≥ 64): 64(m)×64(k) tiles, 4×4 per
//   invocation, weight rows 16 at a time (common/tile64.wgsl).
// WEIGHT_GRAD: dW[n, k] = Σ_m dy[m, n] · x[m, k] (all f32). Each invocation
//   owns 4 rows of dW × 4 columns and walks the m rows (CPU adapters).
//   With SPLIT_M (GPUs), a workgroup of 64 owns one 4×4 block: its
//   invocations take every 64th row of m and their partial blocks are
//   summed in workgroup memory (tree order) — LoRA factors have few
//   outputs and a long m, so one invocation per block would serialise.
//   Bindings: 0 params, 1 dy [m, n], 2 x [m, k], 3 dW [n, k].
// Dispatch: 64 invocations per workgroup, one per (4-row block, column
// group), folded by ops::grid. f32 accumulation.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,
    rows: u32,
    accumulate: u32,
    first: u32,  // INPUT_GRAD on CPU adapters: first chunk row of this segment
}

@group(0) @binding(0) var<uniform> p: Params;

#if INPUT_GRAD
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
#include "common/weights.wgsl"

fn store_dx(o: u32, v: f32) {
    if (p.accumulate != 0u) {
        dx[o] += v;
    } else {
        dx[o] = v;
    }
}

#if TILE64
#include "common/tile64.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let c0 = wid.x * 64u;     // first column (k) of the tile
    let m0 = wid.y * 64u;     // first row (m) of the tile
    let lr = lid / 4u;        // staged dy row m0+lr, columns r0+4lg..+3
    let lg = lid % 4u;
    let wr = lid / 16u;       // staged weight row r0+wr, group c0/4+wg
    let wg = lid % 16u;
    var acc = Acc64();
    for (var r0 = 0u; r0 < p.rows; r0 += 16u) {
        for (var i = 0u; i < 4u; i++) {
            let r = r0 + 4u * lg + i;
            var v = 0.0;
            if (m0 + lr < p.m && r < p.rows) {
                v = dy[(m0 + lr) * p.n + p.n0 + r];
            }
            xs[lr * 17u + 4u * lg + i] = v;
        }
        var wv = vec4<f32>(0.0);
        let g = c0 / 4u + wg;
        if (r0 + wr < p.rows && 4u * g < p.k) {
            wv = w4(r0 + wr, p.k, g);
        }
        for (var i = 0u; i < 4u; i++) {
            ws[(4u * wg + i) * 17u + wr] = wv[i];
        }
        workgroupBarrier();
        acc = tile64_mac(lid3.x, lid3.y, acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = tile64_row(acc, i);
        for (var j = 0u; j < 4u; j++) {
            let m = m0 + lid3.y + 16u * i;
            let c = c0 + lid3.x + 16u * j;
            if (m < p.m && c < p.k) {
                store_dx(m * p.k + c, row[j]);
            }
        }
    }
}
#elif TILED
const T: u32 = 32u;
#include "common/tile32.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let c0 = wid.x * T;       // first column (k) of the tile
    let m0 = wid.y * T;       // first row (m) of the tile
    let lr = lid / 8u;        // staged row: dy row m0+lr / weight row r0+lr
    let lg = lid % 8u;        // staged group of 4: dy columns / weight k
    var acc = vec4<f32>(0.0);
    for (var r0 = 0u; r0 < p.rows; r0 += T) {
        // dy[m0+lr, n0+r0+4lg .. +3] → xs[lr][4lg+i]
        for (var i = 0u; i < 4u; i++) {
            let r = r0 + 4u * lg + i;
            var v = 0.0;
            if (m0 + lr < p.m && r < p.rows) {
                v = dy[(m0 + lr) * p.n + p.n0 + r];
            }
            xs[lr * 33u + 4u * lg + i] = v;
        }
        // W[r0+lr, c0+4lg .. +3] → ws[4lg+i][lr] (transposed: [k][n])
        var wv = vec4<f32>(0.0);
        let g = c0 / 4u + lg;
        if (r0 + lr < p.rows && 4u * g < p.k) {
            wv = w4(r0 + lr, p.k, g);
        }
        for (var i = 0u; i < 4u; i++) {
            ws[(4u * lg + i) * 33u + lr] = wv[i];
        }
        workgroupBarrier();
        acc = tile_mac(lid3.y * 2u, lid3.x * 2u, acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 2u; i++) {
        for (var j = 0u; j < 2u; j++) {
            let m = m0 + lid3.y * 2u + i;
            let c = c0 + lid3.x * 2u + j;
            if (m < p.m && c < p.k) {
                store_dx(m * p.k + c, acc[i * 2u + j]);
            }
        }
    }
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let ng = (p.k + 3u) / 4u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let g = idx % ng;
    let m0 = (idx / ng) * 4u;
    if (m0 >= p.m) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    let mc = min(4u, p.m - m0);
    for (var i = 0u; i < p.rows; i++) {
        let r = p.first + i;
        let w = w4(r, p.k, g);
        let col = p.n0 + r;
        for (var i = 0u; i < mc; i++) {
            acc[i] += dy[(m0 + i) * p.n + col] * w;
        }
    }
    for (var i = 0u; i < mc; i++) {
        for (var c = 0u; c < 4u; c++) {
            let kk = 4u * g + c;
            if (kk < p.k) {
                store_dx((m0 + i) * p.k + kk, acc[i][c]);
            }
        }
    }
}
#endif
#endif

#if WEIGHT_GRAD
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

fn x4(m: u32, g: u32) -> vec4<f32> {
    let base = m * p.k;
    let c = 4u * g;
    var r = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (c + i < p.k) {
            r[i] = x[base + c + i];
        }
    }
    return r;
}

// Σ over rows m0, m0 + step, … of dy[m, n0..n0+nc] · x[m, 4g..4g+3].
fn rows_dot(m0: u32, step: u32, g: u32, n0: u32, nc: u32) -> array<vec4<f32>, 4> {
    var acc: array<vec4<f32>, 4>;
    for (var m = m0; m < p.m; m += step) {
        let xv = x4(m, g);
        for (var i = 0u; i < nc; i++) {
            acc[i] += dy[m * p.n + n0 + i] * xv;
        }
    }
    return acc;
}

// dW rows n0..n0+nc, columns 4g..4g+3.
fn store_dw(n0: u32, nc: u32, g: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < nc; i++) {
        for (var c = 0u; c < 4u; c++) {
            let kk = 4u * g + c;
            if (kk < p.k) {
                dw[(n0 + i) * p.k + kk] = acc[i][c];
            }
        }
    }
}

#if SPLIT_M
var<workgroup> part: array<vec4<f32>, 256>;  // [64 invocations][4 rows]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let ng = (p.k + 3u) / 4u;
    let blk = wid.x + wid.y * nwg.x;   // uniform per workgroup
    let g = blk % ng;
    let n0 = (blk / ng) * 4u;
    let valid = n0 < p.n;
    let nc = select(0u, min(4u, p.n - n0), valid);
    let acc = rows_dot(lid, 64u, g, n0, nc);
    for (var i = 0u; i < 4u; i++) {
        part[lid * 4u + i] = acc[i];
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            for (var i = 0u; i < 4u; i++) {
                part[lid * 4u + i] += part[(lid + s) * 4u + i];
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        store_dw(n0, nc, g, array<vec4<f32>, 4>(part[0], part[1], part[2], part[3]));
    }
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let ng = (p.k + 3u) / 4u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let g = idx % ng;
    let n0 = (idx / ng) * 4u;
    if (n0 >= p.n) {
        return;
    }
    let nc = min(4u, p.n - n0);
    store_dw(n0, nc, g, rows_dot(0u, 1u, g, n0, nc));
}
#endif
#endif
