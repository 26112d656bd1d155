//! Parity cases of the fused decode path's window ops: RoPE and the KV-cache
//! write reading their heads straight out of a fused Q/K/V projection's rows
//! (`rope_window`, `write_cache_window`), at awkward column offsets, with
//! several rows (prefill), GQA head counts, f16 caches and frequency factors;
//! the K cache write with RoPE on the way, and attention roping its queries
//! as it loads them.

use super::{B, EXACT_ISH, REDUCTION, ROPE};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Sym, TensorId};
use crate::ops::attention::{NewKv, RopeQ};
use crate::ops::rope::{Rope, RopeMode, RopeWindow};
use crate::parity::Case;
use crate::rng::Rng;

pub(super) fn rope_window(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // (t, hq, hkv, d, which: 0 = Q window, 1 = K window, factors, mode)
    for (t, hq, hkv, d, k_part, factors, mode) in [
        (1, 9, 3, 64, false, false, RopeMode::Normal),
        (1, 9, 3, 64, true, false, RopeMode::Normal),
        (5, 4, 2, 32, true, false, RopeMode::Neox),
        (3, 2, 1, 16, false, true, RopeMode::Neox),
        (2, 3, 3, 8, true, true, RopeMode::Normal),
    ] {
        let mut b = B::new(rng);
        let p = b.g.sym("pos");
        let ld = (hq + 2 * hkv) * d;
        let qkv = b.input(&[t, ld], DType::F32, 1.0)?;
        let fac = if factors {
            let f = b.g.weight("rope_freqs", &[d / 2], DType::F32)?;
            let v: Vec<f32> = (0..d / 2).map(|i| 1.0 + 0.5 * i as f32).collect();
            b.put(f, &[d / 2], DType::F32, &v)?;
            Some(f)
        } else {
            None
        };
        let (col0, heads) = if k_part { (hq * d, hkv) } else { (0, hq) };
        let rope = Rope {
            mode,
            n_rot: d,
            base: 10000.0,
            scaling: None,
            pos: p,
            period: 0,
            inverse: false,
        };
        let y = b.g.rope_window(
            qkv,
            fac,
            RopeWindow {
                rope,
                col0,
                heads,
                d,
            },
        )?;
        let desc = format!(
            "{mode:?} qkv[{t}, {ld}] cols {col0}+{heads}×{d}{} pos33",
            if factors { " factors" } else { "" }
        );
        out.push(b.case("rope_window", DType::F32, desc, y, vec![33], ROPE)?);
    }
    Ok(out)
}

/// RoPE at the case's position `p` (base 10000, no scaling) and, with
/// `factors`, frequency divisors `1 + j/4` as a weight.
fn rope_at(
    b: &mut B,
    p: Sym,
    mode: RopeMode,
    n_rot: usize,
    factors: bool,
) -> Result<(Rope, Option<TensorId>)> {
    let fac = if factors {
        let f = b.g.weight("rope_freqs", &[n_rot / 2], DType::F32)?;
        let v: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + 0.25 * i as f32).collect();
        b.put(f, &[n_rot / 2], DType::F32, &v)?;
        Some(f)
    } else {
        None
    };
    let rope = Rope {
        mode,
        n_rot,
        base: 10000.0,
        scaling: None,
        pos: p,
        period: 0,
        inverse: false,
    };
    Ok((rope, fac))
}

pub(super) fn write_cache_window(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for kv in [DType::F32, DType::F16] {
        // (t, hq, hkv, d, cap, pos): the V part of a fused Q/K/V row.
        for (t, hq, hkv, d, cap, pos) in [
            (1, 9, 3, 64, 50, 49),
            (4, 4, 2, 6, 9, 3),
            (3, 2, 1, 8, 20, 0),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let cache = b.state(&[hkv, cap, d], kv)?;
            let ld = (hq + 2 * hkv) * d;
            let src = b.input(&[t, ld], DType::F32, 1.0)?;
            let col0 = (hq + hkv) * d;
            let y = b.g.write_cache_window(cache, src, p, col0)?;
            let desc = format!("src[{t}, {ld}] cols {col0}.. cache [{hkv}, {cap}, {d}] pos{pos}");
            out.push(b.case("write_cache_window", kv, desc, y, vec![pos], EXACT_ISH)?);
        }
        // With RoPE on the way: the K part of a fused Q/K/V row, both pair
        // layouts, n_rot < d, frequency factors, several rows. An f16 cache
        // adds one f16 rounding of values that may differ in the last f32
        // bits (rtol 2⁻¹⁰).
        let tol = match kv {
            DType::F16 => super::Tol {
                atol: ROPE.atol,
                rtol: 1e-3,
            },
            _ => ROPE,
        };
        for (t, hq, hkv, d, n_rot, cap, pos, mode, factors) in [
            (1, 9, 3, 64, 64, 700, 641, RopeMode::Normal, false),
            (1, 4, 2, 32, 32, 40, 39, RopeMode::Neox, true),
            (5, 4, 2, 10, 6, 9, 3, RopeMode::Neox, false),
            (3, 2, 1, 8, 4, 20, 0, RopeMode::Normal, true),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let cache = b.state(&[hkv, cap, d], kv)?;
            let ld = (hq + 2 * hkv) * d;
            let src = b.input(&[t, ld], DType::F32, 1.0)?;
            let (rope, fac) = rope_at(&mut b, p, mode, n_rot, factors)?;
            let col0 = hq * d;
            let y = b.g.write_cache_window_rope(cache, src, col0, rope, fac)?;
            let desc = format!(
                "rope {mode:?} n_rot {n_rot}{} src[{t}, {ld}] cols {col0}.. cache [{hkv}, {cap}, {d}] pos{pos}",
                if factors { " factors" } else { "" }
            );
            out.push(b.case("write_cache_window", kv, desc, y, vec![pos], tol)?);
        }
    }
    Ok(out)
}

pub(super) fn attention_rope_q(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for kv in [DType::F32, DType::F16] {
        // (t, hq, hkv, d, n_rot, cap, pos, mode, factors): decode (split-KV
        // kernels) and several rows (attn_rows), a window after other columns;
        // some with a sliding window of keys.
        for (t, hq, hkv, d, n_rot, cap, pos, mode, factors, win) in [
            (1, 9, 3, 64, 64, 700, 641, RopeMode::Normal, false, 0),
            (1, 4, 2, 32, 16, 40, 39, RopeMode::Neox, true, 0),
            (3, 2, 1, 8, 8, 20, 4, RopeMode::Normal, true, 0),
            (7, 6, 2, 64, 64, 40, 10, RopeMode::Neox, false, 0),
            (1, 4, 2, 64, 64, 2100, 2050, RopeMode::Neox, true, 0),
            (1, 4, 1, 64, 64, 700, 641, RopeMode::Neox, false, 300),
            (6, 4, 2, 32, 32, 90, 70, RopeMode::Normal, true, 33),
            // Prefill tiles (attn_tile on GPUs).
            (24, 4, 2, 64, 64, 90, 40, RopeMode::Neox, true, 0),
            (19, 2, 1, 32, 16, 60, 30, RopeMode::Normal, false, 9),
        ] {
            let mut b = B::new(rng);
            let p = b.g.sym("pos");
            let ld = (hq + 2 * hkv) * d + 3;
            let qkv = b.input(&[t, ld], DType::F32, 1.0)?;
            let k = b.state(&[hkv, cap, d], kv)?;
            let v = b.state(&[hkv, cap, d], kv)?;
            let (rope, fac) = rope_at(&mut b, p, mode, n_rot, factors)?;
            let rq = RopeQ {
                rope,
                col0: 3,
                heads: hq,
            };
            let y =
                b.g.attention_rope_q(qkv, k, v, 1.0 / (d as f32).sqrt(), rq, fac, win)?;
            let desc = format!(
                "rope {mode:?} n_rot {n_rot}{} qkv[{t}, {ld}] t{t} hq{hq} hkv{hkv} d{d} cap{cap} pos{pos} window{win}",
                if factors { " factors" } else { "" }
            );
            out.push(b.case("attention", kv, desc, y, vec![pos], REDUCTION)?);
        }
    }
    Ok(out)
}

/// The decode step's attention writing its own K/V cache rows
/// ([`crate::graph::Graph::attention_new_kv`]): one case compares the
/// attention output, a second both whole caches read after the attention
/// node (RoPE's tolerance: the new K row is roped at the position), so a
/// row written wrong, or not at all over the random cache, or a key scored
/// from the wrong copy, fails.
pub(super) fn attention_new_kv(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for kv in [DType::F32, DType::F16] {
        // As write_cache_window's: an f16 cache rounds a roped key whose last
        // f32 bits may differ once more (rtol 2⁻¹⁰); the output then scores
        // that key from the GPU's own rounding.
        let half_tol = match kv {
            DType::F16 => super::Tol {
                atol: ROPE.atol,
                rtol: 1e-3,
            },
            _ => ROPE,
        };
        // (hq, hkv, d, n_rot, cap, pos, mode, factors, window): split-KV
        // (cap > 160 on GPUs) and attn_one, pos 0 (the new key alone), the
        // cache's last row, GQA groups of 1..4, a head dim not a multiple of
        // 4 (scalar cache access), a sliding window.
        for (hq, hkv, d, n_rot, cap, pos, mode, factors, win) in [
            (9, 3, 64, 64, 700, 641, RopeMode::Normal, false, 0),
            (4, 2, 32, 16, 40, 39, RopeMode::Neox, true, 0),
            (2, 1, 8, 8, 20, 0, RopeMode::Normal, true, 0),
            (3, 3, 6, 6, 30, 17, RopeMode::Neox, false, 0),
            (4, 1, 64, 64, 700, 641, RopeMode::Neox, false, 300),
        ] {
            for caches in [false, true] {
                let mut b = B::new(rng);
                let p = b.g.sym("pos");
                let ld = (hq + 2 * hkv) * d + 3;
                let qkv = b.input(&[1, ld], DType::F32, 1.0)?;
                let k = b.state(&[hkv, cap, d], kv)?;
                let v = b.state(&[hkv, cap, d], kv)?;
                let (rope, fac) = rope_at(&mut b, p, mode, n_rot, factors)?;
                let rq = RopeQ {
                    rope,
                    col0: 3,
                    heads: hq,
                };
                let nk = NewKv {
                    k_col0: 3 + hq * d,
                    v_col0: 3 + (hq + hkv) * d,
                };
                let scale = 1.0 / (d as f32).sqrt();
                let y = b.g.attention_new_kv(qkv, k, v, scale, rq, fac, win, nk)?;
                let (res, what, tol) = if caches {
                    let [kf, vf] = [k, v].map(|c| match kv {
                        DType::F32 => Ok(c),
                        _ => b.g.cast(c, DType::F32),
                    });
                    let n = hkv * cap * d;
                    let (kf, vf) = (b.g.reshape(kf?, &[n])?, b.g.reshape(vf?, &[n])?);
                    (b.g.concat(kf, vf, 0)?, "caches", half_tol)
                } else if kv == DType::F16 {
                    (y, "output", half_tol)
                } else {
                    (y, "output", REDUCTION)
                };
                let desc = format!(
                    "new kv ({what}), rope {mode:?} n_rot {n_rot}{} qkv[1, {ld}] hq{hq} hkv{hkv} d{d} cap{cap} pos{pos} window{win}",
                    if factors { " factors" } else { "" }
                );
                out.push(b.case("attention", kv, desc, res, vec![pos], tol)?);
            }
        }
    }
    Ok(out)
}
