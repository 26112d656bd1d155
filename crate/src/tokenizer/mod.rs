//! Text ⇄ token ids for GGUF and Hugging Face models.
//!
//! # Which crate, and why
//!
//! Kiln uses Hugging Face's [`tokenizers`] crate, the same Rust code that backs
//! `transformers`' fast tokenizers, so ids match the reference by construction rather than by
//! re-implementation. It is built with `default-features = false, features = ["unstable_wasm"]`:
//! that swaps the Oniguruma C regex library for the pure-Rust `fancy-regex` and drops the
//! progress bar and the C++ suffix-array trainer, so the crate builds for
//! `wasm32-unknown-unknown` (checked by `./dev.sh test`). Only single-text `encode`/`decode`
//! are used; on wasm32 the crate's optional rayon parallelism is switched off.
//!
//! # How GGUF tokenizers are mapped
//!
//! A GGUF has no `tokenizer.json`; it stores `tokenizer.ggml.model`, `.pre`, `.tokens`,
//! `.token_type`, `.scores`, `.merges`, `.bos_token_id`, `.eos_token_id`,
//! `.unknown_token_id`, `.padding_token_id`, `.add_bos_token`, `.add_eos_token` and
//! `.add_space_prefix`; the loader copies them into a [`TokenizerSpec`]. The pipeline built
//! from it follows transformers' GGUF → fast-tokenizer conversion
//! (`integrations/gguf/gguf_tokenizer_mapping.py`):
//!
//! * **`gpt2`** (byte-level BPE: GPT-2, SmolLM, Llama-3, Qwen2): a BPE model over `tokens` and
//!   `merges` (tokens spelled outside GPT-2's byte alphabet are respelled byte by byte, as HF
//!   does), a `ByteLevel` decoder, and a pre-tokenizer chosen by `pre`:
//!   * `"smollm"`: `Digits(individual_digits)` then `ByteLevel` with GPT-2's regex — the
//!     published SmolLM tokenizer.json (digits are always single tokens);
//!   * `"llama-bpe"`/`"llama3"`/`"llama-v3"` (and the other names transformers maps to the
//!     Llama-3 regex), `"qwen2"`/`"deepseek-r1-qwen"` (Qwen2's regex), `"tekken"`, `"gpt-4o"`/
//!     `"llama4"`: `Split(regex, isolated)` then `ByteLevel(use_regex = false)`. For the three
//!     Llama-3 names BPE also uses `ignore_merges` (a word that is itself a token is not
//!     re-merged), as Llama-3's tokenizer.json and llama.cpp do (transformers' GGUF path
//!     leaves it off);
//!   * `"gpt2"`, `"default"`, a missing `pre` and **any other value**: plain `ByteLevel` with
//!     GPT-2's regex. This is what transformers does for names it does not list; llama.cpp
//!     may split differently for such models, so their ids are only as good as that guess.
//! * **`llama`** (SentencePiece BPE: Llama-2, TinyLlama, Mistral v0.1): a BPE model with byte
//!   fallback (`<0xXX>` tokens) and `fuse_unk`, merges taken from `merges` when the file has
//!   them, else derived from the vocabulary ranked by `scores` (a port of transformers'
//!   `generate_merges`, tie-breaking included). Pre-tokenizer: `Metaspace('▁',
//!   prepend_scheme = first if add_space_prefix else never, split = false)`. Decoder:
//!   `▁` → space, byte fallback, fuse, and strip one leading space when `add_space_prefix`.
//!   Unlike HF, the `<unk>` token is set as the BPE unknown token, which only matters for a
//!   vocabulary without byte tokens.
//! * **any other model** (`t5`, `bert`, `rwkv`, …): [`TokenizerError::UnsupportedModel`].
//!
//! For both, tokens of type 3 (control) and 2 (unknown), and the bos/eos/unk/pad tokens, are
//! registered as *special* added tokens and type 4 (user-defined) as plain added tokens: all
//! are matched whole in raw text (`"<|im_start|>"` is one id) and special ones are dropped by
//! `decode(.., skip_special = true)`. In a byte-level vocabulary a special token spelled
//! outside the byte alphabet is not registered (HF skips it too: it would need a new id).
//! `add_special` in [`Tokenizer::encode`] prepends BOS / appends EOS per `add_bos`/`add_eos`.
//!
//! [`Tokenizer::from_hf_json`] reads a `tokenizer.json` as is; there `add_special` runs the
//! file's own post-processor, and BOS/EOS are guessed from the added tokens' names until
//! [`Tokenizer::with_bos_eos`] sets them (from `tokenizer_config.json` / `config.json`).
//!
//! Parity with HF is tested in `tests/tokenizer.rs` against fixtures written by
//! `tools/gen_tokenizer_fixtures.py`.

pub mod clip;
mod spec;
mod stream;

use std::collections::HashSet;

use thiserror::Error;

pub use stream::StreamDecoder;

/// The split regex Kiln (as transformers) uses for GGUF pre-tokenizer name
/// `pre` (`"llama-bpe"`, `"qwen2"`, …), if it has its own.
pub fn split_pattern_of(pre: &str) -> Option<&'static str> {
    spec::split_pattern(pre)
}

/// Tokenizer errors: bad metadata, bad input ids, or a failure inside `tokenizers`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TokenizerError {
    #[error(
        "tokenizer model '{0}' is not supported (Kiln reads \"gpt2\" byte-level BPE and \"llama\" SentencePiece BPE)"
    )]
    UnsupportedModel(String),
    #[error("the tokenizer vocabulary is empty")]
    EmptyVocab,
    #[error("tokenizer.ggml.{what} has {got} entries, but there are {tokens} tokens")]
    LengthMismatch {
        what: &'static str,
        got: usize,
        tokens: usize,
    },
    #[error("the {what} token id {id} is outside the vocabulary of {vocab} tokens")]
    SpecialIdOutOfRange {
        what: &'static str,
        id: u32,
        vocab: usize,
    },
    #[error("merge {index} ('{merge}') is not two tokens separated by one space")]
    BadMerge { index: usize, merge: String },
    #[error("the '{0}' tokenizer has neither merges nor scores to derive them from")]
    MissingMerges(String),
    #[error("building the tokenizer failed: {0}")]
    Build(String),
    #[error("tokenizer.json could not be read: {0}")]
    HfJson(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("token id {id} is not in the vocabulary (size {vocab})")]
    IdOutOfRange { id: u32, vocab: usize },
}

/// A tokenizer as GGUF metadata describes it (`tokenizer.ggml.*`; see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: `"gpt2"` or `"llama"`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (`"smollm"`, `"llama-bpe"`, `"qwen2"`, …).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    /// Empty means all normal.
    pub token_types: Vec<i32>,
    /// SentencePiece scores (empty if the file has none).
    pub scores: Vec<f32>,
    /// BPE merges, `"left right"`, best first (empty if the file has none).
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
}

/// Who adds BOS/EOS when `encode(.., add_special = true)`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AddSpecial {
    /// Kiln, per the GGUF flags.
    Flags { bos: bool, eos: bool },
    /// The tokenizer.json post-processor.
    PostProcessor,
}

/// Text ⇄ ids. Cheap to share by reference; `encode`/`decode` take `&self`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_special: AddSpecial,
    special: HashSet<u32>,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_special", &self.add_special)
            .field("special_tokens", &self.special.len())
            .finish()
    }
}

/// Common BOS / EOS spellings, for `tokenizer.json` files (which do not say which is which).
const BOS_NAMES: &[&str] = &["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];
const EOS_NAMES: &[&str] = &[
    "</s>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<eos>",
    "<|im_end|>",
    "<|eot_id|>",
];

fn no_parallelism() {
    // rayon cannot start threads on wasm32-unknown-unknown; nothing Kiln calls needs it.
    #[cfg(target_arch = "wasm32")]
    tokenizers::utils::parallelism::set_parallelism(false);
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (see the module docs for the mapping).
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        no_parallelism();
        let built = spec::build(spec)?;
        Ok(Tokenizer {
            inner: built.inner,
            bos: spec.bos,
            eos: spec.eos,
            add_special: AddSpecial::Flags {
                bos: spec.add_bos,
                eos: spec.add_eos,
            },
            special: built.special,
            vocab_size: spec.tokens.len(),
        })
    }

    /// Reads a Hugging Face `tokenizer.json` (safetensors model folders). Padding and
    /// truncation settings in the file are ignored.
    pub fn from_hf_json(json: &[u8]) -> Result<Tokenizer, TokenizerError> {
        no_parallelism();
        let mut inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| TokenizerError::HfJson(e.to_string()))?;
        if let tokenizers::ModelWrapper::BPE(bpe) = inner.get_model() {
            let bpe = uncached_bpe(bpe)?;
            inner.with_model(tokenizers::ModelWrapper::BPE(bpe));
        }
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::HfJson(e.to_string()))?;
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        if vocab_size == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        let added = inner.get_added_tokens_decoder();
        let special: HashSet<u32> = added
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        let find = |names: &[&str]| {
            names.iter().find_map(|n| {
                added
                    .iter()
                    .find(|(_, t)| t.special && t.content == *n)
                    .map(|(&id, _)| id)
            })
        };
        Ok(Tokenizer {
            bos: find(BOS_NAMES),
            eos: find(EOS_NAMES),
            inner,
            add_special: AddSpecial::PostProcessor,
            special,
            vocab_size,
        })
    }

    /// Sets the BOS/EOS ids (e.g. from a model folder's `config.json`).
    pub fn with_bos_eos(
        mut self,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<Tokenizer, TokenizerError> {
        for (what, id) in [("bos", bos), ("eos", eos)] {
            if let Some(id) = id
                && id as usize >= self.vocab_size
            {
                return Err(TokenizerError::SpecialIdOutOfRange {
                    what,
                    id,
                    vocab: self.vocab_size,
                });
            }
        }
        self.bos = bos;
        self.eos = eos;
        Ok(self)
    }

    /// Text → ids. Special tokens written in the text (`"<|im_start|>"`) become their ids;
    /// `add_special` adds BOS/EOS as the model wants (GGUF `add_bos_token`/`add_eos_token`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let (bos, eos, inner_special) = match self.add_special {
            AddSpecial::Flags { bos, eos } => (
                add_special && bos,
                add_special && eos,
                false, // the built pipeline has no post-processor
            ),
            AddSpecial::PostProcessor => (false, false, add_special),
        };
        let enc = self
            .inner
            .encode(text, inner_special)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        if let (true, Some(b)) = (bos, self.bos) {
            ids.push(b);
        }
        ids.extend_from_slice(enc.get_ids());
        if let (true, Some(e)) = (eos, self.eos) {
            ids.push(e);
        }
        Ok(ids)
    }

    /// Ids → text. Unknown ids are an error, not silently dropped.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        for &id in ids {
            self.check_id(id)?;
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    fn check_id(&self, id: u32) -> Result<(), TokenizerError> {
        if (id as usize) < self.vocab_size && self.inner.id_to_token(id).is_some() {
            Ok(())
        } else {
            Err(TokenizerError::IdOutOfRange {
                id,
                vocab: self.vocab_size,
            })
        }
    }

    /// Number of ids (the embedding table's rows), added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The id of a token as the vocabulary spells it (byte-level vocabularies spell a leading
    /// space `Ġ`, SentencePiece ones `▁`), or of an added token such as `"<|im_end|>"`.
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// Whether `id` is a special token (control/unknown, bos/eos/unk/pad, or marked special in
    /// a tokenizer.json); these are dropped by `decode(.., skip_special = true)`.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.contains(&id)
    }
}

/// A copy of a deserialized BPE model without its word cache.
///
/// Every BPE Kiln builds has its cache off (`cache_capacity(0)`): tokenizers
/// 0.23 keeps BPE caches in a thread-local map keyed by model instance and
/// never removes a dropped model's entry, so each tokenizer that encoded
/// anything leaks its cache (up to 10,000 words) for the life of the thread
/// — a process or browser worker that loads models again and again grows
/// without bound (found by the GGUF fuzz target after ≈ 1.4 M tokenizers,
/// when the map's doubling held 76 MB). Without the cache each word's
/// merges are recomputed on every encode: prompts are encoded once per turn,
/// not per generated token.
fn uncached_bpe(
    bpe: &tokenizers::models::bpe::BPE,
) -> Result<tokenizers::models::bpe::BPE, TokenizerError> {
    let bad = |e: String| TokenizerError::HfJson(e);
    let v = serde_json::to_value(bpe).map_err(|e| bad(e.to_string()))?;
    let vocab: tokenizers::models::bpe::Vocab =
        serde_json::from_value(v["vocab"].clone()).map_err(|e| bad(e.to_string()))?;
    let merges: Vec<(String, String)> =
        serde_json::from_value(v["merges"].clone()).map_err(|e| bad(e.to_string()))?;
    let text = |k: &str| v[k].as_str().map(String::from);
    let flag = |k: &str| v[k].as_bool().unwrap_or(false);
    let mut b = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(flag("fuse_unk"))
        .byte_fallback(flag("byte_fallback"))
        .ignore_merges(flag("ignore_merges"))
        .cache_capacity(0);
    if let Some(d) = v["dropout"].as_f64() {
        b = b.dropout(d as f32);
    }
    if let Some(u) = text("unk_token") {
        b = b.unk_token(u);
    }
    if let Some(p) = text("continuing_subword_prefix") {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(p) = text("end_of_word_suffix") {
        b = b.end_of_word_suffix(p);
    }
    b.build().map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_gpt2() -> TokenizerSpec {
        let mut tokens: Vec<String> = spec::byte_chars().iter().map(|c| c.to_string()).collect();
        tokens.extend(["Ġh", "Ġhi", "<|end|>"].map(String::from));
        let mut token_types = vec![1; tokens.len()];
        token_types[258] = 3;
        TokenizerSpec {
            model: "gpt2".into(),
            pre: Some("gpt2".into()),
            tokens,
            token_types,
            merges: vec!["Ġ h".into(), "Ġh i".into()],
            eos: Some(258),
            add_eos: true,
            ..Default::default()
        }
    }

    #[test]
    fn tiny_byte_level_round_trip() {
        let t = Tokenizer::from_spec(&tiny_gpt2()).unwrap();
        assert_eq!(t.vocab_size(), 259);
        let ids = t.encode("a hi<|end|>", true).unwrap();
        assert_eq!(ids, vec![u32::from(b'a'), 257, 258, 258]);
        assert_eq!(t.decode(&ids, false).unwrap(), "a hi<|end|><|end|>");
        assert_eq!(t.decode(&ids, true).unwrap(), "a hi");
        assert!(t.is_special(258) && !t.is_special(257));
        assert_eq!(t.token_id("Ġhi"), Some(257));
    }

    #[test]
    fn bad_specs_are_typed_errors() {
        let mut s = tiny_gpt2();
        s.model = "t5".into();
        assert_eq!(
            Tokenizer::from_spec(&s).unwrap_err(),
            TokenizerError::UnsupportedModel("t5".into())
        );
        let mut s = tiny_gpt2();
        s.merges = vec!["Ġh".into()];
        assert!(matches!(
            Tokenizer::from_spec(&s),
            Err(TokenizerError::BadMerge { index: 0, .. })
        ));
        let mut s = tiny_gpt2();
        s.token_types.pop();
        assert!(matches!(
            Tokenizer::from_spec(&s),
            Err(TokenizerError::LengthMismatch { .. })
        ));
        let mut s = tiny_gpt2();
        s.bos = Some(9999);
        assert!(matches!(
            Tokenizer::from_spec(&s),
            Err(TokenizerError::SpecialIdOutOfRange { what: "bos", .. })
        ));
        let mut s = tiny_gpt2();
        s.merges = vec!["Ġ x".into()];
        assert!(matches!(
            Tokenizer::from_spec(&s),
            Err(TokenizerError::Build(_))
        ));
    }
}
