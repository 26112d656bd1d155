//! A SentencePiece-style `tokenizer.json` (a BPE model with byte fallback:
//! Llama-2, Mistral v0.1, TinyLlama, Gemma) as a `llama` GGUF tokenizer, the
//! form llama.cpp's converter writes from `tokenizer.model`: tokens, scores,
//! token types and `add_space_prefix`, no merges.
//!
//! `tokenizer.json` has merge ranks, not SentencePiece scores. A `llama`
//! tokenizer (llama.cpp's, and Kiln's when a file has no merges) merges the
//! adjacent pair whose joined piece has the best score, so each piece gets
//! minus the rank of the first merge that makes it: the merge order by
//! score is then the order by rank. Transformers builds the merges of a
//! converted SentencePiece model from every split of every piece, ordered by
//! the piece's score, so for those files the two agree exactly
//! (`tests/tokenizer.rs` checks a trained vocabulary's cases against HF).
//! Pieces no merge makes are single characters, bytes and added tokens
//! (score 0, never the result of a pair), or longer pieces HF never merges
//! into, which get scores below every merge's.

use std::collections::HashMap;

use serde_json::Value;

use super::LoadError;
use super::gguf::MetaValue;

fn bad(what: impl Into<String>) -> LoadError {
    LoadError::Tokenizer(what.into())
}

/// Whether `model` is a SentencePiece-style BPE (byte fallback on).
pub(super) fn is_spm(tok: &Value) -> bool {
    tok["model"]["type"] == "BPE" && tok["model"]["byte_fallback"].as_bool() == Some(true)
}

/// `add_space_prefix`: whether the pipeline puts "▁" before the text
/// (Metaspace's prepend scheme, or a normalizer that prepends it). Other
/// pre-tokenizers (splits a `llama` tokenizer does not make) are an error.
pub(super) fn space_prefix(tok: &Value) -> Result<bool, LoadError> {
    let pre = &tok["pre_tokenizer"];
    let from_pre = match pre["type"].as_str() {
        None if pre.is_null() => None,
        Some("Metaspace") if pre["split"].as_bool() != Some(true) => {
            Some(match pre["prepend_scheme"].as_str() {
                Some("first") | Some("always") => true,
                Some("never") => false,
                _ => pre["add_prefix_space"].as_bool().unwrap_or(true),
            })
        }
        _ => {
            return Err(bad(format!(
                "tokenizer.json: a SentencePiece vocabulary with pre-tokenizer {} (Kiln converts none or an unsplit Metaspace)",
                serde_json::to_string(pre)
                    .unwrap_or_default()
                    .chars()
                    .take(120)
                    .collect::<String>()
            )));
        }
    };
    let norm = &tok["normalizer"];
    let parts: Vec<&Value> = match norm["normalizers"].as_array() {
        Some(v) => v.iter().collect(),
        None => vec![norm],
    };
    let prepends = parts
        .iter()
        .any(|n| n["type"] == "Prepend" && n["prepend"] == "\u{2581}");
    Ok(from_pre.unwrap_or(false) || prepends)
}

/// `<0xXX>`: a byte-fallback token.
pub(super) fn is_byte_token(t: &str) -> bool {
    t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && t[3..5].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Scores for `tokens` from `tokenizer.json`'s merges (module docs).
pub(super) fn scores_from_merges(tokens: &[String], merges: &Value) -> Result<Vec<f32>, LoadError> {
    let merges = merges.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut best: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (rank, m) in merges.iter().enumerate() {
        let joined = match m {
            Value::String(s) => {
                let (l, r) = s.split_once(' ').ok_or_else(|| {
                    bad(format!("tokenizer.json: merge {s:?} is not \"left right\""))
                })?;
                format!("{l}{r}")
            }
            Value::Array(p) if p.len() == 2 => p.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err(bad(
                    "tokenizer.json: a merge is neither a string nor a pair",
                ));
            }
        };
        best.entry(joined).or_insert(rank);
    }
    let n = merges.len() as f32;
    Ok(tokens
        .iter()
        .enumerate()
        .map(|(i, t)| match best.get(t) {
            Some(&rank) => -(rank as f32),
            None if t.chars().count() > 1 && !is_byte_token(t) => -(n + i as f32),
            None => 0.0,
        })
        .collect())
}

/// The `llama` keys for a SentencePiece-style vocabulary: `tokens` and
/// `types` as the shared part of the converter built them (byte tokens and
/// the unknown token retyped here).
pub(super) fn keys(
    tok: &Value,
    tokens: Vec<String>,
    mut types: Vec<i32>,
    unk: Option<u32>,
) -> Result<Vec<(String, MetaValue)>, LoadError> {
    let add_space_prefix = space_prefix(tok)?;
    for (i, (t, ty)) in tokens.iter().zip(types.iter_mut()).enumerate() {
        if *ty == 1 && is_byte_token(t) {
            *ty = 6; // BYTE
        }
        if Some(i as u32) == unk {
            *ty = 2; // UNKNOWN
        }
    }
    let scores = scores_from_merges(&tokens, &tok["model"]["merges"])?;
    Ok(vec![
        (
            "tokenizer.ggml.model".into(),
            MetaValue::Str("llama".into()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            MetaValue::Str("default".into()),
        ),
        (
            "tokenizer.ggml.tokens".into(),
            MetaValue::Array(tokens.into_iter().map(MetaValue::Str).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        ),
        (
            "tokenizer.ggml.add_space_prefix".into(),
            MetaValue::Bool(add_space_prefix),
        ),
    ])
}

/// Whether the post-processor puts BOS first (SentencePiece converters'
/// `TemplateProcessing`), the default for `add_bos_token` when
/// `tokenizer_config.json` does not say.
pub(super) fn post_processor_adds_bos(tok: &Value, bos: Option<&str>) -> bool {
    let Some(bos) = bos else { return false };
    let single = &tok["post_processor"]["single"];
    single
        .as_array()
        .and_then(|s| s.first())
        .is_some_and(|first| first["SpecialToken"]["id"] == bos)
}
