//! A diffusers folder's configs and tokenizer (they come from whoever made
//! the folder): the first byte picks what the rest is — the text encoder's,
//! the UNet's, the VAE's, TAESD's or the scheduler's `config.json`, or CLIP
//! `vocab.json` + NUL + `merges.txt` — and every config that parses builds
//! its graph (shapes only; no weights) at the smallest size it takes, every
//! scheduler its schedule for a few step counts.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::model::sd::config::{ClipConfig, Unet2dConfig, VaeConfig};
use kiln::model::sd::scheduler::{SchedConfig, Scheduler, SchedulerKind};
use kiln::model::sd::taesd::TaesdConfig;
use kiln::model::sd::{SdOptions, clip, taesd, unet, vae, vae_encoder};
use kiln::tokenizer::clip::ClipTokenizer;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    common::bounded(data.len(), || {
        if kind % 6 == 5 {
            let (vocab, merges) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            if let Ok(t) = ClipTokenizer::from_files(vocab, merges, None) {
                common::phase("tokenizer");
                let _ = t.encode("a photo of an astronaut riding a horse");
                common::phase("encode");
            }
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        common::phase("json");
        let opts = SdOptions::default();
        match kind % 6 {
            0 => {
                if let Ok(c) = ClipConfig::from_json(&v) {
                    let _ = clip::build(&c, 1, c.max_positions.min(77), &opts);
                }
            }
            1 => {
                if let Ok(c) = Unet2dConfig::from_json(&v) {
                    let m = c.size_multiple();
                    let _ = unet::build(&c, 1, m, m, 4, &opts);
                }
            }
            2 => {
                if let Ok(c) = VaeConfig::from_json(&v) {
                    let _ = vae::build(&c, 1, 1, 1, &opts);
                    let s = c.scale();
                    let _ = vae_encoder::build(&c, 1, s, s, &opts);
                }
            }
            3 => {
                if let Ok(c) = TaesdConfig::from_json(&v) {
                    let _ = taesd::build(&c, 1, 1, 1, &opts);
                }
            }
            _ => {
                if let Ok(c) = SchedConfig::from_json(&v) {
                    for name in ["euler", "euler-a", "ddim", "dpm++2m-karras", "lcm"] {
                        if let Some(k) = SchedulerKind::parse(name) {
                            for steps in [1, 4, 50] {
                                let _ = Scheduler::new(k, &c, steps);
                            }
                        }
                    }
                }
            }
        }
        common::phase("build");
    });
});
