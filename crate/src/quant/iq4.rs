//! IQ4_NL and IQ4_XS: 4-bit indices into ggml's non-linear table
//! `kvalues_iq4nl` (16 values from -127 to 113), scaled per block.
//!
//! IQ4_NL, 32 weights in 18 bytes (4.5 bits/weight), ggml's `block_iq4_nl`:
//! `d: f16` @0, `qs: [u8; 16]` @2 (low nibble elem `j`, high elem `j+16`);
//! `y = d * kvalues[q]`.
//!
//! IQ4_XS, 256 weights in 136 bytes (4.25 bits/weight), `block_iq4_xs`:
//!
//! | offset | bytes | field               | meaning                                         |
//! |--------|-------|---------------------|-------------------------------------------------|
//! | 0      | 2     | `d: f16`            | super-block scale                               |
//! | 2      | 2     | `scales_h: u16`     | high 2 bits of sub-block `i`'s scale at bit 2i  |
//! | 4      | 4     | `scales_l: [u8; 4]` | low 4 bits: sub-block `i` in nibble `i%2` of byte `i/2` |
//! | 8      | 128   | `qs: [u8; 128]`     | 16 bytes per sub-block of 32, as IQ4_NL's `qs`  |
//!
//! `y = (d * (ls - 32)) * kvalues[q]` with `ls` the 6-bit scale.
//!
//! Quantize: ggml's `quantize_row_iq4_nl_impl` as llama-quantize runs it
//! without an importance matrix (`quantize_iq4_nl` / `quantize_iq4_xs`:
//! weights x², 7 tries either side of the first scale).

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, nearest_int, scale_f16, too_large};
use crate::dtype::DType;
use crate::error::Result;

/// ggml's `kvalues_iq4nl`.
pub const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Bytes per IQ4_NL block (32 weights).
pub const NL_BLOCK_BYTES: usize = 18;
/// Bytes per IQ4_XS block (256 weights).
pub const XS_BLOCK_BYTES: usize = 136;

const GROUP_MAX_EPS: f32 = 1e-15;
const NTRY: i32 = 7;

fn kv(q: u8) -> f32 {
    f32::from(KVALUES[usize::from(q & 15)])
}

/// Decodes one 18-byte IQ4_NL block into 32 floats.
pub fn dequantize_nl(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; NL_BLOCK_BYTES] = block_bytes(DType::IQ4_NL, block)?;
    let y: &mut [f32; 32] = block_elems_mut(DType::IQ4_NL, out)?;
    let d = f16_le(b[0], b[1]);
    for j in 0..16 {
        y[j] = d * kv(b[2 + j]);
        y[j + 16] = d * kv(b[2 + j] >> 4);
    }
    Ok(())
}

/// Decodes one 136-byte IQ4_XS block into 256 floats.
pub fn dequantize_xs(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; XS_BLOCK_BYTES] = block_bytes(DType::IQ4_XS, block)?;
    let y: &mut [f32; 256] = block_elems_mut(DType::IQ4_XS, out)?;
    let d = f16_le(b[0], b[1]);
    let sh = u16::from_le_bytes([b[2], b[3]]);
    for ib in 0..8 {
        let ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 15) | ((((sh >> (2 * ib)) & 3) as u8) << 4);
        let dl = d * (i32::from(ls) - 32) as f32;
        let qs = &b[8 + 16 * ib..24 + 16 * ib];
        for j in 0..16 {
            y[32 * ib + j] = dl * kv(qs[j]);
            y[32 * ib + j + 16] = dl * kv(qs[j] >> 4);
        }
    }
    Ok(())
}

/// ggml's `best_index_int8(16, kvalues_iq4nl, x)`.
fn best_index(x: f32) -> u8 {
    let v = |i: usize| f32::from(KVALUES[i]);
    if x <= v(0) {
        return 0;
    }
    if x >= v(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0, 15);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < v(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - v(mu - 1) < v(mu) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// `(Σ w·q·x, Σ w·q²)` of `xb` quantized at inverse scale `id` (indices
/// into `l` when given).
fn sums(xb: &[f32], w: &[f32], id: f32, mut l: Option<&mut [u8]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for (j, (&x, &wj)) in xb.iter().zip(w).enumerate() {
        let k = best_index(id * x);
        if let Some(l) = l.as_deref_mut() {
            l[j] = k;
        }
        let q = kv(k);
        sumqx += wj * q * x;
        sumq2 += wj * q * q;
    }
    (sumqx, sumq2)
}

/// The scale of one sub-block of 32 (`quantize_row_iq4_nl_impl`'s search),
/// its first indices into `l`; 0 for an all-zero sub-block.
fn fit(xb: &[f32], l: &mut [u8]) -> f32 {
    let w: Vec<f32> = xb.iter().map(|x| x * x).collect();
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &x in xb {
        if x.abs() > amax {
            amax = x.abs();
            max = x;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = f32::from(KVALUES[0]);
    let d = -max / v0;
    let (sumqx, sumq2) = sums(xb, &w, 1.0 / d, Some(l));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry + i32::from(KVALUES[0])) as f32 / max;
        let (sumqx, sumq2) = sums(xb, &w, id, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Nibbles of 32 indices as 16 bytes (elem `j` low, `j + 16` high).
fn pack(l: &[u8], q: &mut [u8]) {
    for j in 0..16 {
        q[j] = l[j] | (l[j + 16] << 4);
    }
}

/// Encodes 32 finite floats into one 18-byte IQ4_NL block.
pub fn quantize_nl(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; 32] = block_elems(DType::IQ4_NL, x)?;
    let b: &mut [u8; NL_BLOCK_BYTES] = block_bytes_mut(DType::IQ4_NL, out)?;
    check_finite(DType::IQ4_NL, x)?;
    let mut l = [0u8; 32];
    let s = fit(x, &mut l);
    if !s.is_finite() {
        return Err(too_large(DType::IQ4_NL));
    }
    let dh = scale_f16(DType::IQ4_NL, "d", s)?;
    let id = if s != 0.0 { 1.0 / s } else { 0.0 };
    for (q, &v) in l.iter_mut().zip(x) {
        *q = best_index(id * v);
    }
    b[0..2].copy_from_slice(&dh);
    pack(&l, &mut b[2..18]);
    Ok(())
}

/// Encodes 256 finite floats into one 136-byte IQ4_XS block.
pub fn quantize_xs(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; 256] = block_elems(DType::IQ4_XS, x)?;
    let b: &mut [u8; XS_BLOCK_BYTES] = block_bytes_mut(DType::IQ4_XS, out)?;
    check_finite(DType::IQ4_XS, x)?;
    let mut l = [0u8; 256];
    let mut scales = [0.0f32; 8];
    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for (ib, (xb, lb)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        scales[ib] = fit(xb, lb);
        if !scales[ib].is_finite() {
            return Err(too_large(DType::IQ4_XS));
        }
        if scales[ib].abs() > amax_scale {
            amax_scale = scales[ib].abs();
            max_scale = scales[ib];
        }
    }
    b.fill(0);
    let d = -max_scale / 32.0;
    let dh = scale_f16(DType::IQ4_XS, "d", d)?;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sh = 0u16;
    for (ib, (xb, lb)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let ls = nearest_int(id * scales[ib]).clamp(-32, 31);
        let dl = d * ls as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for (q, &v) in lb.iter_mut().zip(xb) {
            *q = best_index(idl * v);
        }
        let ls = (ls + 32) as u8;
        b[4 + ib / 2] |= (ls & 15) << (4 * (ib % 2));
        sh |= u16::from(ls >> 4) << (2 * ib);
        pack(lb, &mut b[8 + 16 * ib..24 + 16 * ib]);
    }
    b[0..2].copy_from_slice(&dh);
    b[2..4].copy_from_slice(&sh.to_le_bytes());
    Ok(())
}
