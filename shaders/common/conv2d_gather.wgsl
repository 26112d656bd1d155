// common/conv2d_gather.wgsl — one output pixel's im2col row for conv2d.wgsl
// when Cin % 4 == 0 (the twin of conv2d.cu's ImRow): 4 channels of one tap
// per load, and a cursor (ky, kx, ci) that `im_next` moves along K with no
// division, so the K loops of `big` and the 32-tile `main` do no index
// division at all. The includer provides x_vec4(i) (elements i .. i + 4 of x).

// The pixel: in range, oy·stride − pad, ox·stride − pad, its sample's first
// element.
struct Pixel {
    valid: bool,
    iy0: i32,
    ix0: i32,
    base: u32,
}

// A position along K: tap (ky, kx), input channel ci.
struct Cur {
    ci: u32,
    kx: u32,
    ky: u32,
}

fn im_pixel(xm: u32) -> Pixel {
    let pix = xm % (p.oh * p.ow);
    return Pixel(xm < p.m, i32((pix / p.ow) * p.stride) - i32(p.pad),
                 i32((pix % p.ow) * p.stride) - i32(p.pad), (xm / (p.oh * p.ow)) * p.h * p.w * p.cin);
}

fn im_cur(kk: u32) -> Cur {
    let t = kk / p.cin;
    return Cur(kk % p.cin, t % p.kw, t / p.kw);
}

fn im_next(c: Cur, step: u32) -> Cur {
    var r = c;
    r.ci += step;
    while (r.ci >= p.cin) {
        r.ci -= p.cin;
        r.kx += 1u;
        if (r.kx == p.kw) {
            r.kx = 0u;
            r.ky += 1u;
        }
    }
    return r;
}

// 4 channels at the cursor (zeros outside the image and past K).
fn im_load(px: Pixel, c: Cur) -> vec4<f32> {
    let iy = px.iy0 + i32(c.ky);
    let ix = px.ix0 + i32(c.kx);
    if (!px.valid || c.ky >= p.kh || iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return vec4<f32>(0.0);
    }
    return x_vec4(px.base + (u32(iy) * p.w + u32(ix)) * p.cin + c.ci);
}
