//! Streaming detokenization: text out as ids come in, one at a time.

use super::{Tokenizer, TokenizerError};

/// Push ids one at a time; get back the text that is now complete.
///
/// Works on the decoder's output, not on token strings, so every decoder (byte-level,
/// SentencePiece byte fallback, the leading-space strip) behaves exactly as in
/// [`Tokenizer::decode`]. Each step decodes a short window of ids: the ids since the last
/// emission plus the ids of that emission (so context-dependent decoders such as "strip one
/// leading space" see the same first token both times), and emits what the window added.
/// While the window's text ends in U+FFFD — a UTF-8 character or a run of `<0xXX>` byte
/// tokens that is not complete yet — nothing is emitted. [`StreamDecoder::finish`] flushes
/// whatever is left (incomplete bytes then decode to U+FFFD, as in a full decode), so the
/// concatenation of everything returned equals `decode(all ids)`.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special: bool,
    /// Ids from the start of the current window.
    ids: Vec<u32>,
    /// `ids[..read]` has been emitted; `ids[..read]` decodes to the window's prefix text.
    read: usize,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            tokenizer,
            skip_special,
            ids: Vec::new(),
            read: 0,
        }
    }

    /// Adds one id; returns the text it completed (often empty). An id outside the
    /// vocabulary is an error and is not added.
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.tokenizer.check_id(id)?;
        if self.skip_special && self.tokenizer.is_special(id) {
            // decode would drop it anyway; kept out so every window starts with a real token.
            return Ok(String::new());
        }
        self.ids.push(id);
        self.step(false)
    }

    /// Emits whatever is left, even an incomplete character (as U+FFFD), and resets.
    pub fn finish(&mut self) -> Result<String, TokenizerError> {
        let out = self.step(true);
        self.ids.clear();
        self.read = 0;
        out
    }

    fn step(&mut self, flush: bool) -> Result<String, TokenizerError> {
        let t = self.tokenizer;
        let prefix = t.decode(&self.ids[..self.read], self.skip_special)?;
        let full = t.decode(&self.ids, self.skip_special)?;
        if !flush && (full.len() <= prefix.len() || full.ends_with('\u{FFFD}')) {
            return Ok(String::new());
        }
        let new = match full.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.to_string(),
            // Never seen with Kiln's decoders; fall back to the bytes past the prefix length.
            None => full.get(prefix.len()..).unwrap_or_default().to_string(),
        };
        // The next window starts at the ids just emitted.
        self.ids.drain(..self.read);
        self.read = self.ids.len();
        Ok(new)
    }
}
