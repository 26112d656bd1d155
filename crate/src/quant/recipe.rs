//! Which type each tensor of a model gets for a llama.cpp file type
//! ("Q4_K_M", "Q5_K_S", "Q8_0", …): the mixtures `llama-quantize` uses
//! (llama.cpp's `llama_tensor_get_type`, commit 0c1e570), restated for the
//! dense decoders Kiln runs (no MoE, no Falcon, no 70B special case, no
//! importance matrix) so a file Kiln quantizes has the same tensor types as
//! llama-quantize's — checked tensor by tensor, bytes included, in
//! `tests/quantize.rs`.
//!
//! * Only tensors of two or more dimensions whose names end in `weight`,
//!   not `*_norm.weight`, are quantized; the rest keep their type.
//! * The output matrix (and the token embedding when it doubles as the
//!   output) gets Q6_K unless the file type is Q8_0 (or its rows are not
//!   whole blocks of the default type: Q8_0).
//! * `_M` / `_L` / `_S` bump `attn_v` (and fused `attn_qkv`), `ffn_down`
//!   and `attn_output` on chosen layers (`use_more_bits`: the first and
//!   last eighth, and every third layer between).
//! * A type whose block does not divide a row falls back as llama-quantize
//!   does (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K → Q4_0,
//!   IQ4_XS → IQ4_NL, then F16 if even that does not fit).

use crate::dtype::DType;

/// A llama.cpp file type (`general.file_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3KS,
    Q3KM,
    Q3KL,
    Q4KS,
    Q4KM,
    Q5KS,
    Q5KM,
    Q6K,
    IQ4NL,
    IQ4XS,
}

/// (name, type, llama_ftype id, default tensor type).
const TYPES: [(&str, FileType, u32, DType); 19] = [
    ("f32", FileType::F32, 0, DType::F32),
    ("f16", FileType::F16, 1, DType::F16),
    ("bf16", FileType::BF16, 32, DType::BF16),
    ("q8_0", FileType::Q8_0, 7, DType::Q8_0),
    ("q4_0", FileType::Q4_0, 2, DType::Q4_0),
    ("q4_1", FileType::Q4_1, 3, DType::Q4_1),
    ("q5_0", FileType::Q5_0, 8, DType::Q5_0),
    ("q5_1", FileType::Q5_1, 9, DType::Q5_1),
    ("q2_k", FileType::Q2K, 10, DType::Q2_K),
    ("q3_k_s", FileType::Q3KS, 11, DType::Q3_K),
    ("q3_k_m", FileType::Q3KM, 12, DType::Q3_K),
    ("q3_k_l", FileType::Q3KL, 13, DType::Q3_K),
    ("q4_k_s", FileType::Q4KS, 14, DType::Q4_K),
    ("q4_k_m", FileType::Q4KM, 15, DType::Q4_K),
    ("q5_k_s", FileType::Q5KS, 16, DType::Q5_K),
    ("q5_k_m", FileType::Q5KM, 17, DType::Q5_K),
    ("q6_k", FileType::Q6K, 18, DType::Q6_K),
    ("iq4_nl", FileType::IQ4NL, 25, DType::IQ4_NL),
    ("iq4_xs", FileType::IQ4XS, 30, DType::IQ4_XS),
];

impl FileType {
    /// From a name as llama-quantize spells it (any case; `q4_k` means
    /// `q4_k_m`, `q3_k` `q3_k_m`, `q5_k` `q5_k_m`).
    pub fn parse(s: &str) -> Option<FileType> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "q4_k" => "q4_k_m",
            "q3_k" => "q3_k_m",
            "q5_k" => "q5_k_m",
            other => other,
        };
        TYPES.iter().find(|t| t.0 == s).map(|t| t.1)
    }

    pub fn names() -> Vec<&'static str> {
        TYPES.iter().map(|t| t.0).collect()
    }

    fn row(self) -> &'static (&'static str, FileType, u32, DType) {
        // TYPES lists every variant.
        TYPES.iter().find(|t| t.1 == self).unwrap_or(&TYPES[0])
    }

    pub fn name(self) -> &'static str {
        self.row().0
    }

    /// `general.file_type`.
    pub fn id(self) -> u32 {
        self.row().2
    }

    /// The type most tensors get.
    pub fn default_type(self) -> DType {
        self.row().3
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    match name {
        "output.weight" => Category::Output,
        "token_embd.weight" => Category::TokenEmbd,
        // llama-quantize treats a fused QKV as attn_v.
        n if n.contains("attn_qkv.weight") || n.contains("attn_v.weight") => Category::AttnV,
        n if n.contains("attn_k.weight") => Category::AttnK,
        n if n.contains("attn_q.weight") => Category::AttnQ,
        n if n.contains("attn_output.weight") => Category::AttnOutput,
        n if n.contains("ffn_up") => Category::FfnUp,
        n if n.contains("ffn_gate") => Category::FfnGate,
        n if n.contains("ffn_down") => Category::FfnDown,
        _ => Category::Other,
    }
}

/// A tensor as the recipe sees it: name, row-major shape, stored type.
pub struct TensorDesc<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub dtype: DType,
}

/// Does llama-quantize quantize this tensor at all?
pub fn quantizable(name: &str, shape: &[usize]) -> bool {
    shape.len() >= 2 && name.ends_with("weight") && !name.contains("_norm.weight")
}

/// `use_more_bits`: the first and last eighth of the layers, and every
/// third one between.
fn more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8).rem_euclid(3) == 2
}

/// The type of every tensor, in order, for file type `ft` of a model with
/// `n_layers` layers and `n_gqa` query heads per KV head. Returns (type,
/// fell back from) per tensor; `None` where the recipe's type fit.
pub fn plan(
    tensors: &[TensorDesc],
    ft: FileType,
    n_layers: usize,
    n_gqa: usize,
) -> Vec<(DType, Option<DType>)> {
    let default = ft.default_type();
    let n_v = tensors
        .iter()
        .filter(|t| category(t.name) == Category::AttnV)
        .count();
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    let (mut i_v, mut i_down) = (0usize, 0usize);
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        if !quantizable(t.name, t.shape) {
            out.push((t.dtype, None));
            continue;
        }
        if !default.is_quantized() {
            out.push((default, None));
            continue;
        }
        let cols = *t.shape.last().unwrap_or(&1);
        let cat = category(t.name);
        let mut ty = default;
        use FileType as F;
        let is_output = cat == Category::Output || (tied && cat == Category::TokenEmbd);
        match cat {
            _ if is_output => {
                if !cols.is_multiple_of(default.block_size()) {
                    ty = DType::Q8_0;
                } else if ty != DType::Q8_0 {
                    ty = DType::Q6_K;
                }
            }
            Category::Output | Category::TokenEmbd | Category::AttnK | Category::AttnQ => {}
            Category::FfnUp | Category::FfnGate | Category::Other => {}
            Category::AttnV => {
                ty = match ft {
                    F::Q2K if n_gqa >= 4 => DType::Q4_K,
                    F::Q2K => DType::Q3_K,
                    F::Q3KM if i_v < 2 => DType::Q5_K,
                    F::Q3KM => DType::Q4_K,
                    F::Q3KL => DType::Q5_K,
                    F::IQ4NL | F::IQ4XS if n_gqa >= 4 => DType::Q5_K,
                    F::Q4KM | F::Q5KM if more_bits(i_v, n_v) => DType::Q6_K,
                    F::Q4KS if i_v < 4 => DType::Q5_K,
                    _ => ty,
                };
                i_v += 1;
            }
            Category::FfnDown => {
                let (i, n) = (i_down, n_layers);
                ty = match ft {
                    F::Q2K => DType::Q3_K,
                    F::Q3KM if i < n / 16 => DType::Q5_K,
                    F::Q3KM => DType::Q4_K,
                    F::Q3KL => DType::Q5_K,
                    F::Q4KM if more_bits(i, n) => DType::Q6_K,
                    F::IQ4NL | F::IQ4XS if i < n / 8 => DType::Q5_K,
                    F::Q5KM if more_bits(i, n) => DType::Q6_K,
                    F::Q4KS if i < n / 8 => DType::Q5_K,
                    _ => ty,
                };
                i_down += 1;
            }
            Category::AttnOutput => {
                ty = match ft {
                    F::Q2K => DType::Q3_K,
                    F::Q3KM => DType::Q4_K,
                    F::Q3KL => DType::Q5_K,
                    _ => ty,
                };
            }
        }
        out.push(fallback(ty, cols));
    }
    out
}

/// llama-quantize's fallback for a type whose block does not divide `cols`.
fn fallback(ty: DType, cols: usize) -> (DType, Option<DType>) {
    if cols.is_multiple_of(ty.block_size()) {
        return (ty, None);
    }
    let mut to = match ty {
        DType::IQ4_XS => DType::IQ4_NL,
        DType::Q2_K | DType::Q3_K => DType::Q4_0,
        DType::Q4_K => DType::Q5_0,
        DType::Q5_K => DType::Q5_1,
        DType::Q6_K => DType::Q8_0,
        other => other,
    };
    if !cols.is_multiple_of(to.block_size()) {
        to = DType::F16;
    }
    (to, Some(ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_more_bits_matches_llama_cpp() {
        for n in FileType::names() {
            assert_eq!(FileType::parse(n).map(|f| f.name()), Some(n));
        }
        assert_eq!(FileType::parse("Q4_K"), Some(FileType::Q4KM));
        assert_eq!(FileType::parse("q7"), None);
        // 30 layers (SmolLM2): 0..3, 26..29, and 5, 8, ..., 23.
        let picked: Vec<usize> = (0..30).filter(|&i| more_bits(i, 30)).collect();
        assert_eq!(
            picked,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        );
        assert_eq!(fallback(DType::Q4_K, 576), (DType::Q5_0, Some(DType::Q4_K)));
        assert_eq!(fallback(DType::Q6_K, 1536), (DType::Q6_K, None));
        assert_eq!(fallback(DType::Q2_K, 40), (DType::F16, Some(DType::Q2_K)));
    }
}
