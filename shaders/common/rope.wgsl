// common/rope.wgsl — RoPE's frequency and rotation of one element, shared by
// rope.wgsl and attention.wgsl (RoPE on Q as attention loads it). The
// includer's Params has the fields n_rot, neox, base, scaled, factor, low,
// high, orig_ctx, has_factors and inverse (rope.wgsl's names and order), a
// binding `factors: array<f32>` and `fn rope_x(i: u32) -> f32` reading the
// source; include common/trig.wgsl first.

const TWO_PI: f32 = 6.283185307179586;

// θ_j as an f32, with Llama-3 scaling (HF's formula).
fn inv_freq(j: u32) -> f32 {
    let inv = 1.0 / pow(p.base, f32(2u * j) / f32(p.n_rot));
    if (p.scaled == 0u) {
        return inv;
    }
    let old = f32(p.orig_ctx);
    let low_wl = old / p.low;
    let high_wl = old / p.high;
    let wl = TWO_PI / inv;
    if (wl < high_wl) {
        return inv;
    }
    if (wl > low_wl) {
        return inv / p.factor;
    }
    let blend = (old / wl - p.low) / (p.high - p.low);
    return (1.0 - blend) * inv / p.factor + blend * inv;
}

// Element c of the head starting at rope_x(xb), rotated at position `pos`:
// the pair formula of rope.wgsl's main, one element at a time.
fn rotated(xb: u32, c: u32, pos: f32) -> f32 {
    let half_rot = p.n_rot / 2u;
    if (c >= p.n_rot) {
        return rope_x(xb + c);
    }
    var j = c / 2u;
    var a = 2u * j;
    var first = (c & 1u) == 0u;
    var b = a + 1u;
    if (p.neox != 0u) {
        first = c < half_rot;
        j = select(c - half_rot, c, first);
        a = j;
        b = j + half_rot;
    }
    var inv = inv_freq(j);
    if (p.has_factors != 0u) {
        inv = inv / factors[j];
    }
    let cs = cos_sin(pos * inv);
    let s = select(cs.y, -cs.y, p.inverse != 0u);
    let x0 = rope_x(xb + a);
    let x1 = rope_x(xb + b);
    return select(x0 * s + x1 * cs.x, x0 * cs.x - x1 * s, first);
}
