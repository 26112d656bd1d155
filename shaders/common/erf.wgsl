// common/erf.wgsl — erf for f32 (GELU, exact form), shared by unary.wgsl and
// binary.wgsl (GEGLU).

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
