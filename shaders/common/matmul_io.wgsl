// common/matmul_io.wgsl — parameters and bindings shared by the matmul
// kernels (mul_mat.wgsl, mul_mat_vec.wgsl): 0 params, 1 W (weight rows
// n0..n0+rows of this chunk), 2 x [m, k], 3 y [m, n], 4 res [m, n] (the
// residual added in the epilogue; x itself when has_res = 0), with LORA
// 5 lh [m, r] and 6 lb [n, r] (a LoRA path added in the epilogue), and put(),
// which writes y with the LoRA term and the residual.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,    // first weight row of this chunk
    rows: u32,  // weight rows in this chunk
    has_res: u32,
    rows_per_wg: u32,  // subgroup GEMV: weight rows per workgroup (WG / subgroup size)
    lora_rank: u32,    // LORA: r, the columns of lh and lb
    kslab: u32,        // BIG (mul_mat.wgsl): K per workgroup (all of it)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
#if X_VEC4
// k % 4 == 0: x read as vec4 (one load per group of 4 on CPU adapters).
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// Residual added to the product (x itself when has_res = 0).
@group(0) @binding(4) var<storage, read> res: array<f32>;

#if LORA
// The LoRA term of the epilogue: y[m, c] += Σ_j lh[m, j] · lb[c, j]
// (lh = x·Aᵀ [m, r], lb = B scaled [n, r]).
@group(0) @binding(5) var<storage, read> lh: array<f32>;
@group(0) @binding(6) var<storage, read> lb: array<f32>;
#endif

// v plus the LoRA term of y[i] (v without LORA).
fn lora_add(i: u32, v: f32) -> f32 {
    var s = v;
#if LORA
    let r = p.lora_rank;
    let hb = (i / p.n) * r;
    let bb = (i % p.n) * r;
    for (var j = 0u; j < r; j++) {
        s += lh[hb + j] * lb[bb + j];
    }
#endif
    return s;
}

fn put(i: u32, v: f32) {
    let s = lora_add(i, v);
    if (p.has_res != 0u) {
        y[i] = s + res[i];
    } else {
        y[i] = s;
    }
}
