//! The GGUF reader: header and metadata, the Llama config, the tokenizer
//! from metadata, the chat template, and the graph builder's checks against
//! the tensors present (no tensor bytes are read).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::generate::{ChatMessage, ChatTemplate};
use kiln::loader::gguf::GgufFile;
use kiln::model::LlamaConfig;
use kiln::model::llama::{self, LlamaOptions};
use kiln::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    common::bounded(data.len(), || {
        let mut r = std::io::Cursor::new(data);
        let Ok(g) = GgufFile::parse(&mut r, data.len() as u64) else {
            return;
        };
        common::phase("parse");
        if let Ok(c) = LlamaConfig::from_gguf(&g) {
            let lookup = |n: &str| g.tensor(n).map(|t| (t.shape.clone(), t.dtype));
            let opts = LlamaOptions {
                max_ctx: 64,
                prefill_chunk: 16,
                ..Default::default()
            };
            let _ = llama::build(&c, &opts, &lookup);
            common::phase("graph");
        }
        if let Ok(spec) = g.tokenizer_spec()
            && let Ok(tok) = Tokenizer::from_spec(&spec)
        {
            common::phase("tokenizer");
            let _ = tok.encode("Hello, world!", true);
            common::phase("encode");
            if let Ok(t) = ChatTemplate::for_tokenizer(g.chat_template(), &tok) {
                common::phase("template");
                let _ = t.render(&[ChatMessage::new("user", "hi")], true);
                common::phase("render");
            }
        }
    });
});
