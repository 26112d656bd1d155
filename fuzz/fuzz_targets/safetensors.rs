//! A Hugging Face safetensors folder in memory: the input is split into
//! `config.json`, `tokenizer.json` and one or two shards (lengths from the
//! first bytes); the Llama config, the graph builder, every weight it names
//! (read and converted), and the whole folder converted to a GGUF
//! (`kiln::loader::hf_gguf`, written to a sink).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::loader::WeightSource;
use kiln::loader::safetensors::HfFolder;
use kiln::model::llama::{self, LlamaOptions};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    common::bounded(data.len(), || {
        // data[0]·8 bytes of config.json (padded with spaces), data[3]·64 of
        // tokenizer.json, then one shard, or (data[2] odd) two split after
        // data[1]·1024 bytes.
        let rest = &data[4..];
        let (config, rest) = rest.split_at((data[0] as usize * 8).min(rest.len()));
        let (tokenizer, rest) = rest.split_at((data[3] as usize * 64).min(rest.len()));
        let two = data[2] & 1 == 1;
        let at = if two {
            (data[1] as usize * 1024).min(rest.len())
        } else {
            rest.len()
        };
        let (shard0, shard1) = rest.split_at(at);
        let mut shards = vec![("model-00001.safetensors".to_string(), shard0.to_vec())];
        if two {
            shards.push(("model-00002.safetensors".to_string(), shard1.to_vec()));
        }
        let Ok(mut f) = HfFolder::from_memory(config, None, shards) else {
            return;
        };
        if let Ok(c) = f.llama_config() {
            let opts = LlamaOptions {
                max_ctx: 64,
                prefill_chunk: 16,
                ..Default::default()
            };
            let lookup = |n: &str| f.info(n);
            let names: Vec<String> = match llama::build(&c, &opts, &lookup) {
                Ok(g) => g.weights.into_iter().map(|w| w.0).collect(),
                Err(_) => return,
            };
            for n in names {
                let _ = f.read(&n);
            }
            let _ = kiln::loader::hf_gguf::convert_folder(
                &mut f,
                tokenizer,
                "fuzz",
                &mut std::io::sink(),
                &mut |_, _| true,
            );
        }
    });
});
