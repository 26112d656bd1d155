//! PEFT adapter files: `adapter_config.json` (its length from the first
//! two bytes) and `adapter_model.safetensors`.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::train::lora::Adapter;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    common::bounded(data.len(), || {
        let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        let (config, weights) = data[2..].split_at(n);
        let _ = Adapter::from_peft(&String::from_utf8_lossy(config), weights);
    });
});
