//! The ONNX reader and the UNet config inference (the terrain model's
//! loader), without reading initializer data beyond shapes.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::loader::onnx::OnnxModel;
use kiln::model::unet::{UnetConfig, find_prefix};

fuzz_target!(|data: &[u8]| {
    common::bounded(data.len(), || {
        let Ok(m) = OnnxModel::parse(data.to_vec()) else {
            return;
        };
        if let Ok(prefix) = find_prefix(&m) {
            let _ = UnetConfig::from_onnx(&m, &prefix);
        }
    });
});
