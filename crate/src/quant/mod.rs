//! CPU quantize / dequantize for the GGUF tensor types Kiln reads, byte for byte
//! in ggml's layouts, so a GGUF tensor's bytes are used unchanged.
//!
//! All multi-byte fields are little-endian. `f16` is IEEE binary16; `d`, `m`,
//! `dmin` are scales stored as `f16`. Offsets are in bytes from the block start.
//!
//! | format | block elems | block bytes | bits/weight | layout                                                                       |
//! |--------|-------------|-------------|-------------|------------------------------------------------------------------------------|
//! | F32    | 1           | 4           | 32          | IEEE binary32                                                                |
//! | F16    | 1           | 2           | 16          | IEEE binary16                                                                |
//! | BF16   | 1           | 2           | 16          | top 16 bits of a binary32                                                    |
//! | Q8_0   | 32          | 34          | 8.5         | `d` @0, `qs: [i8; 32]` @2; `y = q*d`                                         |
//! | Q4_0   | 32          | 18          | 4.5         | `d` @0, `qs: [u8; 16]` @2 (lo nibble: elem j, hi: elem j+16); `y = (q-8)*d`  |
//! | Q4_1   | 32          | 20          | 5.0         | `d` @0, `m` @2, `qs: [u8; 16]` @4 (as Q4_0); `y = q*d + m`                   |
//! | Q5_0   | 32          | 22          | 5.5         | `d` @0, `qh: u32` @2 (5th bits), `qs: [u8; 16]` @6; `y = (q-16)*d`           |
//! | Q5_1   | 32          | 24          | 6.0         | `d` @0, `m` @2, `qh: u32` @4, `qs: [u8; 16]` @8; `y = q*d + m`               |
//! | Q4_K   | 256         | 144         | 4.5         | `d` @0, `dmin` @2, 6-bit scales/mins `[u8; 12]` @4, `qs: [u8; 128]` @16      |
//! | Q2_K   | 256         | 84          | 2.625       | 4-bit scale+min `[u8; 16]` @0, `qs: [u8; 64]` @16, `d` @80, `dmin` @82       |
//! | Q3_K   | 256         | 110         | 3.4375      | `hmask: [u8; 32]` @0, `qs: [u8; 64]` @32, 6-bit scales `[u8; 12]` @96, `d` @108 |
//! | Q5_K   | 256         | 176         | 5.5         | as Q4_K, plus `qh: [u8; 32]` @16 (5th bits); `qs: [u8; 128]` @48             |
//! | IQ4_NL | 32          | 18          | 4.5         | `d` @0, `qs: [u8; 16]` @2 (as Q4_0); `y = d*kvalues_iq4nl[q]`               |
//! | IQ4_XS | 256         | 136         | 4.25        | `d` @0, `scales_h: u16` @2, `scales_l: [u8; 4]` @4, `qs: [u8; 128]` @8     |
//! | Q6_K   | 256         | 210         | 6.5625      | `ql: [u8; 128]` @0, `qh: [u8; 64]` @128, `scales: [i8; 16]` @192, `d` @208   |
//!
//! Each block format's module ([`q8_0`], [`q4_0`], [`q4_1`], [`q5_0`], [`q5_1`],
//! [`q2_k`], [`q3_k`], [`q4_k`], [`q5_k`], [`q6_k`], [`iq4`])
//! documents its layout field by field and has `dequantize_block` /
//! `quantize_block`.
//!
//! Dequantization repeats ggml's `dequantize_row_*` arithmetic in `f32`, operation
//! for operation (Rust never fuses a multiply-add), so its output is bit-identical
//! to gguf-py's `gguf.quants.dequantize` (inf/NaN scales propagate the same way;
//! only NaN payload bits are not pinned down).
//! Quantization of Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 repeats ggml's `quantize_row_*_ref` and
//! gives the same bytes as gguf-py's `gguf.quants.quantize`; Q2_K … Q6_K follow
//! `quantize_row_q2_K_ref` … `quantize_row_q6_K_ref`, and IQ4_NL / IQ4_XS
//! llama-quantize's `quantize_iq4_nl` / `quantize_iq4_xs` (no importance matrix), operation for operation
//! (gguf-py cannot quantize them; when written, their bytes matched ggml's C
//! reference built without FMA contraction on 403 varied super-blocks).
//! F16/BF16 encode round to nearest, ties to even (the `half` crate).
//!
//! Library code never panics: bad lengths are [`KilnError::ByteLength`] /
//! [`KilnError::BlockMisaligned`]. Quantizing NaN/inf into a block format, or
//! values whose block scale would overflow `f16`, is a [`KilnError::BadParam`]
//! (ggml would silently store an infinite scale); F32/F16/BF16 encode NaN/inf as
//! IEEE does.

#[cfg(not(target_arch = "wasm32"))]
pub mod file;
pub mod iq4;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod recipe;

#[cfg(test)]
mod tests;

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use half::{bf16, f16};

type DequantFn = fn(&[u8], &mut [f32]) -> Result<()>;
type QuantFn = fn(&[f32], &mut [u8]) -> Result<()>;

fn block_fns(dtype: DType) -> Option<(DequantFn, QuantFn)> {
    match dtype {
        DType::Q8_0 => Some((q8_0::dequantize_block, q8_0::quantize_block)),
        DType::Q4_0 => Some((q4_0::dequantize_block, q4_0::quantize_block)),
        DType::Q4_1 => Some((q4_1::dequantize_block, q4_1::quantize_block)),
        DType::Q5_0 => Some((q5_0::dequantize_block, q5_0::quantize_block)),
        DType::Q5_1 => Some((q5_1::dequantize_block, q5_1::quantize_block)),
        DType::Q2_K => Some((q2_k::dequantize_block, q2_k::quantize_block)),
        DType::Q3_K => Some((q3_k::dequantize_block, q3_k::quantize_block)),
        DType::Q4_K => Some((q4_k::dequantize_block, q4_k::quantize_block)),
        DType::Q5_K => Some((q5_k::dequantize_block, q5_k::quantize_block)),
        DType::Q6_K => Some((q6_k::dequantize_block, q6_k::quantize_block)),
        DType::IQ4_NL => Some((iq4::dequantize_nl, iq4::quantize_nl)),
        DType::IQ4_XS => Some((iq4::dequantize_xs, iq4::quantize_xs)),
        DType::F32 | DType::F16 | DType::BF16 | DType::U32 => None,
    }
}

/// Bytes that `n` elements of `dtype` occupy; `n` must be a whole number of blocks.
fn bytes_for(dtype: DType, n: usize, op: &'static str) -> Result<usize> {
    if dtype == DType::U32 {
        return Err(KilnError::UnsupportedDType {
            op,
            operand: "data",
            dtype,
        });
    }
    let block = dtype.block_size();
    if !n.is_multiple_of(block) {
        return Err(KilnError::BlockMisaligned {
            dtype,
            len: n,
            block,
        });
    }
    (n / block)
        .checked_mul(dtype.block_bytes())
        .ok_or_else(|| KilnError::BadParam {
            op,
            detail: format!("{n} {dtype} elements do not fit in memory"),
        })
}

/// Decodes `n` elements of `dtype` from `bytes` (exactly `dtype.row_bytes(n)` long).
pub fn dequantize(dtype: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    // Validate before allocating, so a bogus `n` cannot trigger a huge allocation.
    check_bytes(dtype, bytes, n)?;
    let mut out = vec![0.0f32; n];
    dequantize_into(dtype, bytes, &mut out)?;
    Ok(out)
}

fn check_bytes(dtype: DType, bytes: &[u8], n: usize) -> Result<()> {
    let expected = bytes_for(dtype, n, "dequantize")?;
    if bytes.len() != expected {
        return Err(KilnError::ByteLength {
            what: format!("{dtype} data for {n} elements"),
            expected,
            got: bytes.len(),
        });
    }
    Ok(())
}

/// Decodes `out.len()` elements of `dtype` from `bytes` into `out`.
pub fn dequantize_into(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check_bytes(dtype, bytes, out.len())?;
    match dtype {
        DType::F32 => {
            for (y, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                if let &[a, b, c, d] = c {
                    *y = f32::from_le_bytes([a, b, c, d]);
                }
            }
        }
        DType::F16 => {
            for (y, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                if let &[a, b] = c {
                    *y = f16_le(a, b);
                }
            }
        }
        DType::BF16 => {
            for (y, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                if let &[a, b] = c {
                    *y = bf16::from_le_bytes([a, b]).to_f32();
                }
            }
        }
        _ => {
            let Some((deq, _)) = block_fns(dtype) else {
                return Err(KilnError::UnsupportedDType {
                    op: "dequantize",
                    operand: "data",
                    dtype,
                });
            };
            let chunks = bytes.chunks_exact(dtype.block_bytes());
            for (b, y) in chunks.zip(out.chunks_exact_mut(dtype.block_size())) {
                deq(b, y)?;
            }
        }
    }
    Ok(())
}

/// Encodes `x` as `dtype`; `x.len()` must be a whole number of blocks.
///
/// Block formats reject NaN/inf input and scales beyond `f16` range with
/// [`KilnError::BadParam`]; F32/F16/BF16 convert every value (F16/BF16 round to
/// nearest even, overflow to inf, keep NaN quiet).
pub fn quantize(dtype: DType, x: &[f32]) -> Result<Vec<u8>> {
    let len = bytes_for(dtype, x.len(), "quantize")?;
    let mut out = vec![0u8; len];
    match dtype {
        DType::F32 => {
            for (c, v) in out.chunks_exact_mut(4).zip(x) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            for (c, v) in out.chunks_exact_mut(2).zip(x) {
                c.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
            }
        }
        DType::BF16 => {
            for (c, v) in out.chunks_exact_mut(2).zip(x) {
                c.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
            }
        }
        _ => {
            let Some((_, quant)) = block_fns(dtype) else {
                return Err(KilnError::UnsupportedDType {
                    op: "quantize",
                    operand: "data",
                    dtype,
                });
            };
            if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(non_finite(dtype, i, *v));
            }
            quantize_blocks(dtype, quant, x, &mut out)?;
        }
    }
    Ok(out)
}

/// `x` as rows of `cols` values in `dtype`: one [`quantize`] call (threaded
/// on native targets) when blocks tile the rows, else row by row (each
/// row's partial last block is what `quantize` reports for it).
pub fn quantize_rows(dtype: DType, x: &[f32], cols: usize) -> Result<Vec<u8>> {
    let cols = cols.max(1);
    if cols.is_multiple_of(dtype.block_size()) {
        return quantize(dtype, x);
    }
    let mut out = Vec::new();
    for row in x.chunks(cols) {
        out.extend(quantize(dtype, row)?);
    }
    Ok(out)
}

/// Encodes whole blocks, on native targets spread over the machine's threads
/// (large checkpoints quantized on load: a Stable-Diffusion UNet's 865 M
/// weights take minutes to Q4_K on one core). Each thread owns a contiguous
/// run of blocks; the first failing block (lowest index) is reported.
fn quantize_blocks(dtype: DType, quant: QuantFn, x: &[f32], out: &mut [u8]) -> Result<()> {
    let (bs, bb) = (dtype.block_size(), dtype.block_bytes());
    let run = |first: usize, xs: &[f32], os: &mut [u8]| -> Result<()> {
        for (i, (xb, ob)) in xs.chunks_exact(bs).zip(os.chunks_exact_mut(bb)).enumerate() {
            quant(xb, ob).map_err(|e| match e {
                KilnError::BadParam { op, detail } => KilnError::BadParam {
                    op,
                    detail: format!("block {}: {detail}", first + i),
                },
                other => other,
            })?;
        }
        Ok(())
    };
    let blocks = x.len() / bs;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(32));
        if threads > 1 && blocks >= 4096 {
            let per = blocks.div_ceil(threads);
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = x
                    .chunks(per * bs)
                    .zip(out.chunks_mut(per * bb))
                    .enumerate()
                    .map(|(t, (xs, os))| s.spawn(move || run(t * per, xs, os)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(KilnError::BadParam {
                                op: "quantize",
                                detail: "a quantizing thread panicked".into(),
                            })
                        })
                    })
                    .collect()
            });
            return results.into_iter().collect();
        }
    }
    run(0, &x[..blocks * bs], out)
}

// ---- helpers shared by the block modules -------------------------------------

fn non_finite(dtype: DType, i: usize, v: f32) -> KilnError {
    KilnError::BadParam {
        op: "quantize",
        detail: format!("element {i} is {v}; {dtype} cannot encode NaN or infinity"),
    }
}

/// Reads a little-endian `f16` and widens it (exact).
#[inline]
pub(crate) fn f16_le(lo: u8, hi: u8) -> f32 {
    f16::from_le_bytes([lo, hi]).to_f32()
}

/// Rounds a block scale to `f16` (nearest even) as little-endian bytes; an
/// infinite or NaN result (|v| > 65504) is an error rather than a corrupt block.
pub(crate) fn scale_f16(dtype: DType, field: &str, v: f32) -> Result<[u8; 2]> {
    let h = f16::from_f32(v);
    if !h.is_finite() {
        return Err(KilnError::BadParam {
            op: "quantize",
            detail: format!("{dtype} scale {field} = {v:e} does not fit in f16 (max 65504)"),
        });
    }
    Ok(h.to_le_bytes())
}

/// Error for finite input whose fitted scale is not finite (|x| near `f32::MAX`).
pub(crate) fn too_large(dtype: DType) -> KilnError {
    KilnError::BadParam {
        op: "quantize",
        detail: format!("{dtype} block values are too large for an f16 scale"),
    }
}

/// Rejects NaN/inf inside one block.
pub(crate) fn check_finite(dtype: DType, x: &[f32]) -> Result<()> {
    match x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((i, v)) => Err(non_finite(dtype, i, *v)),
        None => Ok(()),
    }
}

/// The 32 five-bit quants of a Q5_0 / Q5_1 block: the nibbles of `qs`
/// (elem `j` low, `j + 16` high) with bit `j` of `qh` as their fifth bit.
pub(crate) fn q5_unpack(qh: [u8; 4], qs: &[u8]) -> [u32; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u32; 32];
    for (j, &b) in qs.iter().take(16).enumerate() {
        q[j] = u32::from(b & 0x0F) | (((qh >> j) << 4) & 0x10);
        q[j + 16] = u32::from(b >> 4) | ((qh >> (j + 12)) & 0x10);
    }
    q
}

/// The inverse of [`q5_unpack`]: writes the 16 `qs` bytes, returns `qh`.
pub(crate) fn q5_pack(q: &[u32; 32], qs: &mut [u8]) -> [u8; 4] {
    let mut qh = 0u32;
    for (j, b) in qs.iter_mut().take(16).enumerate() {
        let (q0, q1) = (q[j], q[j + 16]);
        *b = ((q0 & 0x0F) | ((q1 & 0x0F) << 4)) as u8;
        qh |= ((q0 & 0x10) >> 4) << j;
        qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    qh.to_le_bytes()
}

/// Q2_K / Q3_K's 2-bit layout: 64 bytes, 4 quants each; byte `32h + l`
/// holds elements `128h + l + 32k` (k = 0..4) at bits `2k`. `q(e)` is
/// element `e`'s quant (0..=3).
pub(crate) fn pack_2bit(q: impl Fn(usize) -> u8, qs: &mut [u8]) {
    for h in 0..2 {
        for l in 0..32 {
            let at = |k: usize| q(128 * h + l + 32 * k);
            qs[32 * h + l] = at(0) | (at(1) << 2) | (at(2) << 4) | (at(3) << 6);
        }
    }
}

/// The least and greatest of a block's values, scanned in order as ggml's
/// `quantize_row_q4_1_ref` / `_q5_1_ref` do (Q4_1 and Q5_1 store the min).
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `nearest_int`: round half to even (its magic-number trick does exactly
/// this for |v| < 2^22); out-of-range values saturate, NaN gives 0.
#[inline]
pub(crate) fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Views a block's bytes as an array, or reports the wrong length.
pub(crate) fn block_bytes<const N: usize>(dtype: DType, b: &[u8]) -> Result<&[u8; N]> {
    b.try_into().map_err(|_| KilnError::ByteLength {
        what: format!("one {dtype} block"),
        expected: N,
        got: b.len(),
    })
}

/// Mutable variant of [`block_bytes`].
pub(crate) fn block_bytes_mut<const N: usize>(dtype: DType, b: &mut [u8]) -> Result<&mut [u8; N]> {
    let got = b.len();
    b.try_into().map_err(|_| KilnError::ByteLength {
        what: format!("one {dtype} block"),
        expected: N,
        got,
    })
}

fn elems_err(dtype: DType, op: &'static str, expected: usize, got: usize) -> KilnError {
    KilnError::Shape {
        op,
        detail: format!("one {dtype} block holds {expected} elements, slice has {got}"),
    }
}

/// Views a block's elements as an array, or reports the wrong length.
pub(crate) fn block_elems<const N: usize>(dtype: DType, x: &[f32]) -> Result<&[f32; N]> {
    x.try_into()
        .map_err(|_| elems_err(dtype, "quantize_block", N, x.len()))
}

/// Mutable variant of [`block_elems`].
pub(crate) fn block_elems_mut<const N: usize>(
    dtype: DType,
    x: &mut [f32],
) -> Result<&mut [f32; N]> {
    let got = x.len();
    x.try_into()
        .map_err(|_| elems_err(dtype, "dequantize_block", N, got))
}
