//! The streaming GGUF reader (`GgufStream`, what the browser's loader and
//! `ModelStream` use) fed the file in piece sizes the input chooses (its
//! first 8 bytes seed them: single bytes, a few KiB, 64 KiB, the rest),
//! checked against the whole-file reader: a stream that is accepted must be
//! a file `GgufFile::parse` accepts, with the same tensors, each tensor's
//! bytes exactly the file's at its offset, in file order.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
#[global_allocator]
static A: common::Counting = common::Counting;

use kiln::loader::gguf::GgufFile;
use kiln::loader::stream::{GgufStream, Pushed};

fn next(s: &mut u64) -> u64 {
    // xorshift64*: any seed but 0 (replaced) cycles through every value.
    if *s == 0 {
        *s = 0x9e37_79b9_7f4a_7c15;
    }
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, file)) = data.split_first_chunk::<8>() else {
        return;
    };
    let mut s = u64::from_le_bytes(*seed);
    common::bounded(data.len(), || {
        let mut st = GgufStream::new(file.len() as u64);
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        let mut headers = 0;
        let mut rest = file;
        let mut ok = true;
        while !rest.is_empty() {
            let r = next(&mut s);
            let cap = match r % 4 {
                0 => 1 + (r >> 8) % 7,
                1 => 1 + (r >> 8) % 4096,
                2 => 1 + (r >> 8) % 65_536,
                _ => u64::MAX,
            };
            let n = rest.len().min(cap as usize);
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            let pushed = st.push(piece, &mut |p| {
                match p {
                    Pushed::Header(_) => headers += 1,
                    Pushed::Tensor(name, t) => got.push((name, t.data)),
                }
                Ok(())
            });
            if pushed.is_err() {
                ok = false;
                break;
            }
        }
        common::phase("stream");
        if !ok || st.finish().is_err() {
            return;
        }
        // Accepted: the whole-file reader must agree.
        let whole = GgufFile::parse(&mut std::io::Cursor::new(file), file.len() as u64)
            .expect("a stream the streaming reader accepted fails the whole-file reader");
        assert_eq!(headers, 1, "header reported {headers} times");
        let mut tensors: Vec<_> = whole.tensors.iter().collect();
        tensors.sort_by_key(|t| t.offset);
        let streamed: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(streamed, want, "tensors streamed vs in the file");
        for (t, (_, bytes)) in tensors.iter().zip(&got) {
            let at = t.offset as usize;
            assert_eq!(
                bytes.as_slice(),
                &file[at..at + t.bytes as usize],
                "tensor '{}' bytes",
                t.name
            );
        }
        let h = st.header().expect("header after finish");
        assert_eq!(h.metadata.len(), whole.metadata.len(), "metadata entries");
        assert_eq!(h.data_offset, whole.data_offset, "data offset");
        common::phase("compare");
    });
});
