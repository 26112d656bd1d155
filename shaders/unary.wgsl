// unary.wgsl — element-wise f32 functions (ops/unary.rs).
// Bindings: 0 params, 1 x: array<f32>, 2 y: array<f32>.
// Dispatch: ceil(n/256) workgroups of 256, folded into (x, y) by ops::grid.
// Tolerance: see parity registry (transcendentals: WGSL exp/tanh are not
// correctly rounded; errors of a few ulp relative).

struct Params {
    n: u32,
    kind: u32,   // 0 silu, 1 gelu (tanh), 2 gelu (erf), 3 scale
    s: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Abramowitz & Stegun 7.1.26 is too coarse (1.5e-7 abs is fine, but the
// relative error near 0 is not): use erf(x) = 2/sqrt(pi) * series for |x|<1
// and the A&S form elsewhere.
fn erf_approx(v: f32) -> f32 {
    let a = abs(v);
    if (a < 1.0) {
        let x2 = v * v;
        // Maclaurin series to x^15: error < 3e-8 on |x| < 1.
        var term = v;
        var sum = v;
        for (var n = 1u; n < 12u; n++) {
            term = term * (-x2) / f32(n);
            sum += term / f32(2u * n + 1u);
        }
        return 1.1283791670955126 * sum;
    }
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-a * a));
}

fn gelu_tanh(v: f32) -> f32 {
    let c = 0.7978845608028654;
    let u = c * (v + 0.044715 * v * v * v);
    // tanh through exp, safe for large |u|.
    let e = exp(-2.0 * abs(u));
    let t = sign(u) * (1.0 - e) / (1.0 + e);
    return 0.5 * v * (1.0 + t);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    var r: f32;
    switch p.kind {
        case 0u: { r = v / (1.0 + exp(-v)); }
        case 1u: { r = gelu_tanh(v); }
        case 2u: { r = 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
        default: { r = v * p.s; }
    }
    y[i] = r;
}
