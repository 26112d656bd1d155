//! The CLIP BPE tokenizer of Stable-Diffusion folders (`tokenizer/vocab.json`,
//! `merges.txt` and `tokenizer_config.json`), built on the `tokenizers`
//! crate the way transformers converts `CLIPTokenizer` to its fast form:
//! NFC, runs of whitespace → one space, lower case; CLIP's word regex; byte-
//! level pieces; BPE with the `</w>` end-of-word suffix. `encode_padded`
//! gives what diffusers' pipelines feed the text encoder: `<|startoftext|>`,
//! at most `max_length − 2` ids, `<|endoftext|>`, then the pad token up to
//! `max_length` (77).

use serde_json::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormSeq};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::TokenizerError;

/// CLIP's word pattern (the special tokens, contractions, letter runs, single
/// digits, runs of other non-space characters).
const PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub max_length: usize,
}

fn build_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build(e.to_string())
}

impl ClipTokenizer {
    /// From the files of a diffusers `tokenizer/` folder
    /// (`tokenizer_config.json` may be absent: pad = EOS, 77 tokens).
    pub fn from_files(
        vocab_json: &[u8],
        merges_txt: &[u8],
        tokenizer_config: Option<&[u8]>,
    ) -> Result<ClipTokenizer, TokenizerError> {
        let vocab: std::collections::HashMap<String, u32> = serde_json::from_slice(vocab_json)
            .map_err(|e| TokenizerError::HfJson(format!("vocab.json: {e}")))?;
        if vocab.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let text = std::str::from_utf8(merges_txt)
            .map_err(|e| TokenizerError::HfJson(format!("merges.txt: {e}")))?;
        let mut merges = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with("#version") || line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                    merges.push((a.to_string(), b.to_string()));
                }
                _ => {
                    return Err(TokenizerError::BadMerge {
                        index,
                        merge: line.into(),
                    });
                }
            }
        }
        let id = |t: &str, what: &'static str| {
            vocab.get(t).copied().ok_or_else(|| {
                TokenizerError::Build(format!("the {what} token '{t}' is not in vocab.json"))
            })
        };
        let (bos, eos) = (id(BOS, "start")?, id(EOS, "end")?);
        let cfg: Value = match tokenizer_config {
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| TokenizerError::HfJson(format!("tokenizer_config.json: {e}")))?,
            None => Value::Null,
        };
        // A token is a string or {"content": …} in tokenizer_config.json.
        let pad_name = match cfg.get("pad_token") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or(EOS)
                .to_string(),
            _ => EOS.to_string(),
        };
        let pad = id(&pad_name, "pad")?;
        let max_length = cfg
            .get("model_max_length")
            .and_then(Value::as_u64)
            .filter(|n| (3..=4096).contains(n))
            .unwrap_or(77) as usize;
        let model = BPE::builder()
            .vocab_and_merges(
                vocab
                    .into_iter()
                    .collect::<tokenizers::models::bpe::Vocab>(),
                merges,
            )
            .unk_token(EOS.into())
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix("</w>".into())
            .cache_capacity(0)
            .build()
            .map_err(build_err)?;
        let mut inner = tokenizers::Tokenizer::new(model);
        let norm = NormSeq::new(vec![
            NFC.into(),
            Replace::new(
                tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
                " ",
            )
            .map_err(build_err)?
            .into(),
            Lowercase.into(),
        ]);
        inner.with_normalizer(Some(norm)).map_err(build_err)?;
        let split = Split::new(
            SplitPattern::Regex(PATTERN.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(build_err)?;
        inner.with_pre_tokenizer(Some(PreSeq::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])));
        // The special tokens, and any the folder adds (SD 2.x adds its pad
        // token "!", which then splits out of words as transformers does).
        // transformers matches them on the normalized (lower-cased) text.
        let mut added = vec![
            AddedToken::from(BOS, true).normalized(true),
            AddedToken::from(EOS, true).normalized(true),
        ];
        if let Some(Value::Object(m)) = cfg.get("added_tokens_decoder") {
            for t in m.values() {
                let Some(content) = t.get("content").and_then(Value::as_str) else {
                    continue;
                };
                if content == BOS || content == EOS {
                    continue;
                }
                let flag = |k: &str, d: bool| t.get(k).and_then(Value::as_bool).unwrap_or(d);
                added.push(
                    AddedToken::from(content, flag("special", true))
                        .normalized(flag("normalized", false))
                        .lstrip(flag("lstrip", false))
                        .rstrip(flag("rstrip", false))
                        .single_word(flag("single_word", false)),
                );
            }
        }
        inner.add_special_tokens(added).map_err(build_err)?;
        super::no_parallelism();
        Ok(ClipTokenizer {
            inner,
            bos,
            eos,
            pad,
            max_length,
        })
    }

    /// The ids of `text` without start/end tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `max_length` ids as the pipelines tokenize a prompt (module docs).
    pub fn encode_padded(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let body = self.encode(text)?;
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos);
        ids.extend(body.iter().take(self.max_length - 2));
        ids.push(self.eos);
        ids.resize(self.max_length, self.pad);
        Ok(ids)
    }
}
