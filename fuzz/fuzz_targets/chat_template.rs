//! Chat templates come from model files and are code: any source either
//! fails to compile or renders within the fuel/recursion/output limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::generate::{ChatMessage, ChatTemplate};

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    common::bounded(data.len(), || {
        if let Ok(t) = ChatTemplate::new(&src, "<s>", "</s>") {
            let msgs = [
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", "hi"),
                ChatMessage::new("assistant", "hello"),
            ];
            let _ = t.render(&msgs, true);
        }
    });
});
