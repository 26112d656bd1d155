// common/trig.wgsl — cos/sin accurate to ≤ 4e-7 absolute for |a| up to a
// few thousand (octant reduction + Taylor polynomials). WGSL/Vulkan only
// promise 2^-11 from the built-ins, and software adapters (SwiftShader:
// Chromium's WebGPU without a GPU) deliver about that. Used by rope.wgsl and
// timestep_embed.wgsl.

// (cos a, sin a): a reduced to r ∈ [−π/4, π/4] by quarter turns (π/2 split
// in two parts, Cody–Waite), then Taylor series through r⁹ / r⁸.
fn cos_sin(a: f32) -> vec2<f32> {
    let k = round(a * 0.63661977236758134);        // 2/π
    let r = (a - k * 1.5703125) - k * 4.8382679489661923e-4;  // π/2 = hi + lo
    let r2 = r * r;
    let sr = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
    let cr = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0))));
    let q = i32(k) & 3;
    if (q == 0) {
        return vec2<f32>(cr, sr);
    } else if (q == 1) {
        return vec2<f32>(-sr, cr);
    } else if (q == 2) {
        return vec2<f32>(-cr, -sr);
    }
    return vec2<f32>(sr, -cr);
}
