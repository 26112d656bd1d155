//! Building a `tokenizers` pipeline from GGUF `tokenizer.ggml.*` metadata ([`TokenizerSpec`]).
//!
//! Mirrors transformers' GGUF → fast-tokenizer conversion
//! (`transformers/integrations/gguf/gguf_tokenizer_mapping.py`); see the module docs of
//! [`super`] for the mapping and the few deliberate differences.

use std::collections::{HashMap, HashSet};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::{TokenizerError, TokenizerSpec};

/// GGUF token types (`tokenizer.ggml.token_type`), sentencepiece's numbering.
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// Llama-3's split pattern (also used by the other names in [`split_pattern`]).
const LLAMA3_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// Qwen2's split pattern: like Llama-3's but single digits.
const QWEN2_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// Mistral's Tekken pattern.
const TEKKEN_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// GPT-4o's pattern (also Llama-4).
const GPT4O_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// The split regex for a `tokenizer.ggml.pre` value, as transformers' `GGUF_PRE_TOKENIZER_SPLITS`.
pub(super) fn split_pattern(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// A built pipeline plus the ids Kiln treats as special.
pub(super) struct Built {
    pub inner: tokenizers::Tokenizer,
    pub special: HashSet<u32>,
}

fn build_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build(e.to_string())
}

/// Checks that hold for every model type.
fn validate(spec: &TokenizerSpec) -> Result<(), TokenizerError> {
    let n = spec.tokens.len();
    if n == 0 {
        return Err(TokenizerError::EmptyVocab);
    }
    if u32::try_from(n).is_err() {
        return Err(TokenizerError::Build(format!(
            "{n} tokens do not fit u32 ids"
        )));
    }
    for (what, len) in [
        ("token_type", spec.token_types.len()),
        ("scores", spec.scores.len()),
    ] {
        if len != 0 && len != n {
            return Err(TokenizerError::LengthMismatch {
                what,
                got: len,
                tokens: n,
            });
        }
    }
    for (what, id) in [
        ("bos", spec.bos),
        ("eos", spec.eos),
        ("unknown", spec.unk),
        ("padding", spec.pad),
    ] {
        if let Some(id) = id
            && id as usize >= n
        {
            return Err(TokenizerError::SpecialIdOutOfRange { what, id, vocab: n });
        }
    }
    Ok(())
}

pub(super) fn build(spec: &TokenizerSpec) -> Result<Built, TokenizerError> {
    match spec.model.as_str() {
        "gpt2" => {
            validate(spec)?;
            gpt2(spec)
        }
        "llama" => {
            validate(spec)?;
            llama(spec)
        }
        other => Err(TokenizerError::UnsupportedModel(other.to_string())),
    }
}

/// GPT-2's byte → printable-character table (`bytes_to_unicode`).
pub(super) fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        let code = if printable {
            b as u32
        } else {
            extra += 1;
            255 + extra
        };
        *slot = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

/// Parses `"a b"` merges, or derives them from the scores when the file has none.
fn merges_for(spec: &TokenizerSpec) -> Result<Merges, TokenizerError> {
    if !spec.merges.is_empty() {
        return spec
            .merges
            .iter()
            .enumerate()
            .map(|(index, m)| match m.split_once(' ') {
                Some((a, b)) if !b.contains(' ') => Ok((a.to_string(), b.to_string())),
                _ => Err(TokenizerError::BadMerge {
                    index,
                    merge: m.clone(),
                }),
            })
            .collect();
    }
    if spec.scores.is_empty() {
        return Err(TokenizerError::MissingMerges(spec.model.clone()));
    }
    Ok(merges_from_scores(&spec.tokens, &spec.scores))
}

/// Merges implied by a SentencePiece vocabulary: every split of a token into two tokens,
/// best score first. A port of transformers' `generate_merges(vocab, vocab_scores)`, ties and
/// duplicate tokens included: later duplicates win the id, earlier ones keep their position.
pub(super) fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Merges {
    let mut ids: HashMap<&str, u32> = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        ids.insert(t.as_str(), i as u32);
    }
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut score: HashMap<&str, f32> = HashMap::with_capacity(tokens.len());
    for (t, &s) in tokens.iter().zip(scores) {
        if score.insert(t.as_str(), s).is_none() {
            order.push(t.as_str());
        }
    }
    // (left, right, score, chars in left, chars in right)
    let mut merges: Vec<(&str, &str, f32, usize, usize)> = Vec::new();
    for t in order {
        let s = score.get(t).copied().unwrap_or(0.0);
        let mut local: Vec<(&str, &str, u32, u32)> = t
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = t.split_at(at);
                Some((l, r, *ids.get(l)?, *ids.get(r)?))
            })
            .collect();
        local.sort_by_key(|&(_, _, il, ir)| (il, ir));
        merges.extend(
            local
                .into_iter()
                .map(|(l, r, _, _)| (l, r, s, l.chars().count(), r.chars().count())),
        );
    }
    // Python's stable `sorted(key=(score, len(l), len(r)), reverse=True)`.
    merges.sort_by(|a, b| {
        b.2.partial_cmp(&a.2)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.3.cmp(&a.3))
            .then(b.4.cmp(&a.4))
    });
    merges
        .into_iter()
        .map(|(l, r, ..)| (l.to_string(), r.to_string()))
        .collect()
}

/// Registers control/unknown tokens and the bos/eos/unk/pad tokens as special, user-defined
/// tokens as plain added tokens; all matched whole in raw text. `eligible` filters tokens
/// that cannot be added without creating a new id (see [`gpt2`]).
fn add_tokens(
    inner: &mut tokenizers::Tokenizer,
    spec: &TokenizerSpec,
    eligible: impl Fn(&str) -> bool,
) -> Result<HashSet<u32>, TokenizerError> {
    let named: HashSet<u32> = [spec.bos, spec.eos, spec.unk, spec.pad]
        .into_iter()
        .flatten()
        .collect();
    let mut special = Vec::new();
    let mut special_ids = HashSet::new();
    let mut user = Vec::new();
    for (i, t) in spec.tokens.iter().enumerate() {
        let ty = spec.token_types.get(i).copied().unwrap_or(1);
        if !eligible(t) {
            continue;
        }
        if ty == TYPE_CONTROL || ty == TYPE_UNKNOWN || named.contains(&(i as u32)) {
            special.push(AddedToken::from(t.clone(), true));
            special_ids.insert(i as u32);
        } else if ty == TYPE_USER_DEFINED {
            user.push(AddedToken::from(t.clone(), false).normalized(false));
        }
    }
    if !special.is_empty() {
        inner.add_special_tokens(special).map_err(build_err)?;
    }
    if !user.is_empty() {
        inner.add_tokens(user).map_err(build_err)?;
    }
    // An added token whose text is a duplicate resolves to one id; keep the ids it really has.
    Ok(special_ids
        .into_iter()
        .filter(|&id| {
            inner
                .id_to_token(id)
                .and_then(|t| inner.token_to_id(&t))
                .is_some_and(|back| back == id)
        })
        .collect())
}

/// `gpt2`: byte-level BPE (GPT-2, SmolLM, Llama-3, Qwen2, …).
fn gpt2(spec: &TokenizerSpec) -> Result<Built, TokenizerError> {
    let spelling = byte_chars();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    // Tokens the file spells outside the byte alphabet are respelled byte by byte (as HF does).
    let vocab: Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let key = if in_alphabet(t) {
                t.clone()
            } else {
                t.bytes().map(|b| spelling[b as usize]).collect()
            };
            (key, i as u32)
        })
        .collect();
    let pre = spec.pre.as_deref().unwrap_or("default");
    let ignore_merges = matches!(pre, "llama3" | "llama-v3" | "llama-bpe");
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges_for(spec)?)
        .ignore_merges(ignore_merges)
        .cache_capacity(0)
        .build()
        .map_err(build_err)?;
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    let special = add_tokens(&mut inner, spec, in_alphabet)?;
    Ok(Built { inner, special })
}

/// The pre-tokenizer for a byte-level vocabulary's `tokenizer.ggml.pre`.
pub(super) fn byte_level_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    if pre == "smollm" {
        return Ok(PreSequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into());
    }
    if let Some(pattern) = split_pattern(pre) {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(build_err)?;
        return Ok(PreSequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])
        .into());
    }
    // "gpt2", "default" and every name not listed above: GPT-2's own regex.
    Ok(ByteLevel::new(false, true, true).into())
}

/// `llama`: SentencePiece BPE with byte fallback (Llama-2, TinyLlama, Mistral v0.1, …).
fn llama(spec: &TokenizerSpec) -> Result<Built, TokenizerError> {
    let vocab: Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges_for(spec)?)
        .byte_fallback(true)
        .fuse_unk(true)
        .cache_capacity(0);
    if let Some(unk) = spec.unk.and_then(|id| spec.tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let model = builder.build().map_err(build_err)?;
    let mut inner = tokenizers::Tokenizer::new(model);
    let scheme = if spec.add_space_prefix {
        PrependScheme::First
    } else {
        PrependScheme::Never
    };
    inner.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ").map_err(build_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if spec.add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    let special = add_tokens(&mut inner, spec, |_| true)?;
    Ok(Built { inner, special })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_split_pattern_compiles() {
        for pre in [
            "llama3", "qwen2", "tekken", "gpt-4o", "smollm", "gpt2", "whatever",
        ] {
            assert!(byte_level_pre_tokenizer(pre).is_ok(), "{pre}");
        }
    }

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_chars();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[0xad], 'Ń');
        let unique: HashSet<char> = t.iter().copied().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn merges_follow_scores_then_lengths() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0];
        let m = merges_from_scores(&tokens, &scores);
        let want = [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")];
        let want: Merges = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(m, want);
    }
}
