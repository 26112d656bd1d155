//! Training data: JSONL chat examples in the OpenAI fine-tuning shape
//! (`{"messages": [{"role", "content"}, …]}` per line) rendered with the
//! model's own chat template and trained on assistant turns only, or plain
//! text (every token trained); packed into fixed-length sequences.
//! The conventions are `tools/lora_reference.py`'s (its module docs):
//!
//! * **Masking**: for each assistant message, the text rendered after the
//!   generation prompt up to and including the first end-of-turn string
//!   (`<|im_end|>` for ChatML) is trained; headers, system and user turns
//!   are not. Pieces are tokenized separately so the mask is exact.
//! * **Packing**: examples in file order are concatenated into one stream
//!   and cut into consecutive `seq`-token chunks; the tail is dropped, and
//!   so is any chunk with nothing to train. Chunks are shuffled per epoch
//!   (Kiln's seeded RNG).

use crate::generate::{ChatMessage, ChatTemplate};
use crate::loader::LoadError;
use crate::ops::cross_entropy::MASKED;
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;

use super::Batch;

/// Token ids with a per-token "trained" flag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
}

fn err(m: String) -> LoadError {
    LoadError::Train(m)
}

/// Parses JSONL chat data; errors name the line.
pub fn parse_jsonl(text: &str) -> Result<Vec<Vec<ChatMessage>>, LoadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: &str| err(format!("line {}: {m}", i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at(&format!("not JSON ({e})")))?;
        let msgs = v
            .get("messages")
            .and_then(|m| m.as_array())
            .ok_or_else(|| at("no \"messages\" array"))?;
        let mut conv = Vec::new();
        for m in msgs {
            let role = m.get("role").and_then(|r| r.as_str());
            let content = m.get("content").and_then(|c| c.as_str());
            match (role, content) {
                (Some(r), Some(c)) => conv.push(ChatMessage::new(r, c)),
                _ => return Err(at("a message needs string \"role\" and \"content\"")),
            }
        }
        if !conv.iter().any(|m| m.role == "assistant") {
            return Err(at("no assistant message to train on"));
        }
        out.push(conv);
    }
    if out.is_empty() {
        return Err(err("the data file has no examples".into()));
    }
    Ok(out)
}

fn encode(tok: &Tokenizer, s: &str) -> Result<Vec<u32>, LoadError> {
    tok.encode(s, false)
        .map_err(|e| LoadError::Tokenizer(e.to_string()))
}

/// Renders one conversation and marks its assistant replies (to `eot`).
pub fn chat_example(
    conv: &[ChatMessage],
    template: &ChatTemplate,
    tok: &Tokenizer,
    eot: &str,
) -> Result<Example, LoadError> {
    let full = template.render(conv, false)?;
    // Byte spans of the trained text.
    let mut spans = Vec::new();
    for (i, m) in conv.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let prefix = template.render(&conv[..i], true)?;
        if !full.starts_with(&prefix) {
            return Err(err(
                "the chat template does not render conversations as prefixes of each other".into(),
            ));
        }
        let start = prefix.len();
        let end = full[start..]
            .find(eot)
            .map(|e| start + e + eot.len())
            .ok_or_else(|| err(format!("no end-of-turn '{eot}' after an assistant reply")))?;
        spans.push((start, end));
    }
    let mut ex = Example::default();
    let mut at = 0;
    for (s, e) in spans {
        for (a, b, t) in [(at, s, false), (s, e, true)] {
            if b > a {
                let ids = encode(tok, &full[a..b])?;
                ex.trained.extend(std::iter::repeat_n(t, ids.len()));
                ex.ids.extend(ids);
            }
        }
        at = e;
    }
    if at < full.len() {
        let ids = encode(tok, &full[at..])?;
        ex.trained.extend(std::iter::repeat_n(false, ids.len()));
        ex.ids.extend(ids);
    }
    Ok(ex)
}

/// Plain text: every token trained.
pub fn text_example(text: &str, tok: &Tokenizer) -> Result<Example, LoadError> {
    let ids = encode(tok, text)?;
    Ok(Example {
        trained: vec![true; ids.len()],
        ids,
    })
}

/// Reads a data file: `.jsonl` chat examples, anything else plain text.
pub fn load_examples(
    name: &str,
    text: &str,
    template: &ChatTemplate,
    tok: &Tokenizer,
    eot: &str,
) -> Result<Vec<Example>, LoadError> {
    if name.ends_with(".jsonl") || text.trim_start().starts_with("{\"messages\"") {
        parse_jsonl(text)?
            .iter()
            .map(|c| chat_example(c, template, tok, eot))
            .collect()
    } else {
        Ok(vec![text_example(text, tok)?])
    }
}

/// One packed sequence: ids and HF labels (-100 where untrained).
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub ids: Vec<u32>,
    pub labels: Vec<i64>,
}

/// Concatenates the examples and cuts `seq`-token chunks (tail dropped,
/// chunks with no trained target dropped).
pub fn pack(examples: &[Example], seq: usize) -> Vec<Chunk> {
    let ids: Vec<u32> = examples
        .iter()
        .flat_map(|e| e.ids.iter().copied())
        .collect();
    let tr: Vec<bool> = examples
        .iter()
        .flat_map(|e| e.trained.iter().copied())
        .collect();
    let mut out = Vec::new();
    for c in 0..ids.len() / seq.max(1) {
        let r = c * seq..(c + 1) * seq;
        let labels: Vec<i64> = r
            .clone()
            .map(|i| if tr[i] { ids[i] as i64 } else { -100 })
            .collect();
        // Position 0's label is never a target (it predicts nothing before it).
        if labels[1..].iter().any(|l| *l >= 0) {
            out.push(Chunk {
                ids: ids[r].to_vec(),
                labels,
            });
        }
    }
    out
}

/// Holds out every n-th chunk for validation (n = round(1 / fraction), at
/// least 2), keeping at most `max` of them; nothing is held out when
/// `fraction ≤ 0` or there are fewer than 4 chunks. Returns (train, val).
pub fn split_validation(chunks: Vec<Chunk>, fraction: f64, max: usize) -> (Vec<Chunk>, Vec<Chunk>) {
    if fraction <= 0.0 || chunks.len() < 4 {
        return (chunks, Vec::new());
    }
    let every = (1.0 / fraction.min(0.5)).round().max(2.0) as usize;
    let (v, t): (Vec<_>, Vec<_>) = chunks
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % every == every - 1);
    (
        t.into_iter().map(|(_, c)| c).collect(),
        v.into_iter().map(|(_, c)| c).take(max.max(1)).collect(),
    )
}

/// Draws batches of chunks, reshuffling every epoch.
pub struct Batches {
    chunks: Vec<Chunk>,
    order: Vec<usize>,
    pos: usize,
    rng: Rng,
    pub epoch: usize,
}

impl Batches {
    pub fn new(chunks: Vec<Chunk>, seed: u64) -> Result<Batches, LoadError> {
        if chunks.is_empty() {
            return Err(err(
                "no sequence to train on (the data is shorter than one sequence, or masks everything)"
                    .into(),
            ));
        }
        let mut b = Batches {
            order: Vec::new(),
            pos: 0,
            rng: Rng::new(seed),
            epoch: 0,
            chunks,
        };
        b.shuffle();
        Ok(b)
    }

    fn shuffle(&mut self) {
        self.order = (0..self.chunks.len()).collect();
        for i in (1..self.order.len()).rev() {
            let j = self.rng.below(i as u32 + 1) as usize;
            self.order.swap(i, j);
        }
        self.pos = 0;
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The next `rows` chunks as one batch.
    pub fn next_batch(&mut self, rows: usize) -> Result<Batch, LoadError> {
        let mut ids = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..rows {
            if self.pos == self.order.len() {
                self.epoch += 1;
                self.shuffle();
            }
            let c = &self.chunks[self.order[self.pos]];
            ids.push(c.ids.clone());
            labels.push(c.labels.clone());
            self.pos += 1;
        }
        Batch::from_hf(&ids, &labels)
    }

    /// Every chunk, in order, as batches of `rows` (the last one padded
    /// with fully masked rows): a validation pass.
    pub fn all(&self, rows: usize) -> Result<Vec<Batch>, LoadError> {
        let mut out = Vec::new();
        for group in self.chunks.chunks(rows) {
            let mut b = Batch::from_hf(
                &group.iter().map(|c| c.ids.clone()).collect::<Vec<_>>(),
                &group.iter().map(|c| c.labels.clone()).collect::<Vec<_>>(),
            )?;
            let seq = group[0].ids.len();
            for _ in group.len()..rows {
                b.ids.extend(std::iter::repeat_n(0, seq));
                b.targets.extend(std::iter::repeat_n(MASKED, seq));
            }
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_drops_tail_and_untrained_chunks() {
        let ex = Example {
            ids: (0..10).collect(),
            trained: vec![
                false, false, false, false, true, true, false, false, false, false,
            ],
        };
        let c = pack(&[ex], 3);
        // Chunks [0..3) no target, [3..6) targets 4,5, [6..9) none; 9 is the tail.
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].ids, vec![3, 4, 5]);
        assert_eq!(c[0].labels, vec![-100, 4, 5]);
    }

    #[test]
    fn validation_split_takes_every_nth_chunk_up_to_max() {
        let chunks: Vec<Chunk> = (0..20)
            .map(|i| Chunk {
                ids: vec![i, i],
                labels: vec![-100, i as i64],
            })
            .collect();
        let (t, v) = split_validation(chunks.clone(), 0.25, 100);
        assert_eq!((t.len(), v.len()), (15, 5));
        assert_eq!(v[0].ids, vec![3, 3]);
        let (_, v) = split_validation(chunks.clone(), 0.25, 2);
        assert_eq!(v.len(), 2);
        let (t, v) = split_validation(chunks[..3].to_vec(), 0.5, 10);
        assert_eq!((t.len(), v.len()), (3, 0));
        assert_eq!(split_validation(chunks, 0.0, 10).1.len(), 0);
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let e = parse_jsonl("{\"messages\": []}\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_jsonl("\n{oops\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse_jsonl("").is_err());
    }
}
