//! Loading a tokenizer, encoding with it and dropping it gives all its
//! memory back: GGUF-metadata BPE, Hugging Face `tokenizer.json` BPE and
//! the CLIP BPE, each built and dropped thousands of times in one thread,
//! under a counting allocator. (tokenizers 0.23's BPE word cache lives in a
//! thread-local map that keeps every dropped model's entry — a leak Kiln
//! avoids by building its BPEs uncached; see `kiln::tokenizer`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const TEXT: &str = "Hello, world! The kiln fires clay at 1200 degrees; pots, tiles and bricks.";

/// Bytes still held after `n` rounds of `round` beyond those held after a
/// warm-up (lazily built statics, first-use tables).
fn growth(n: usize, round: &dyn Fn()) -> isize {
    for _ in 0..50 {
        round();
    }
    let before = HELD.load(Ordering::Relaxed);
    for _ in 0..n {
        round();
    }
    HELD.load(Ordering::Relaxed) - before
}

fn fixture(p: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(p),
    )
    .unwrap()
}

#[test]
fn dropped_tokenizers_give_their_memory_back() {
    // Tests in this binary share the counter: this is its only test.
    let gguf = fixture("models/llama3/llama3.F32.gguf");
    let g =
        kiln::loader::gguf::GgufFile::parse(&mut std::io::Cursor::new(&gguf), gguf.len() as u64)
            .unwrap();
    let spec = g.tokenizer_spec().unwrap();
    let json = fixture("models/llama3/tokenizer.json");
    let (vocab, merges) = (
        fixture("sd/tiny_sd15/tokenizer/vocab.json"),
        fixture("sd/tiny_sd15/tokenizer/merges.txt"),
    );
    let n = 3000;
    let rounds: [(&str, &dyn Fn()); 3] = [
        ("GGUF metadata", &|| {
            let t = kiln::tokenizer::Tokenizer::from_spec(&spec).unwrap();
            assert!(!t.encode(TEXT, true).unwrap().is_empty());
        }),
        ("tokenizer.json", &|| {
            let t = kiln::tokenizer::Tokenizer::from_hf_json(&json).unwrap();
            assert!(!t.encode(TEXT, true).unwrap().is_empty());
        }),
        ("CLIP", &|| {
            let t =
                kiln::tokenizer::clip::ClipTokenizer::from_files(&vocab, &merges, None).unwrap();
            assert!(!t.encode(TEXT).unwrap().is_empty());
        }),
    ];
    for (what, round) in rounds {
        let g = growth(n, round);
        eprintln!("{what}: {g} bytes still held after {n} tokenizers");
        // A leak of one map entry per tokenizer is ≥ 48 bytes each (≥ 144 KB);
        // allow a few hash-table growths of unrelated statics.
        assert!(g < 64 << 10, "{what}: {g} bytes leaked over {n} tokenizers");
    }
}
