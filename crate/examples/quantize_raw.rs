//! Quantizes little-endian f32 values from stdin into each dtype named on the
//! command line, writing the blocks to stdout one dtype after another
//! (tools/quant_vs_ggml.sh compares them with ggml's C reference).
//!
//!     cargo run --release -p kiln --example quantize_raw -- q4_k q5_k < x.f32 > q.bin

use std::io::{Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut b = Vec::new();
    std::io::stdin().read_to_end(&mut b)?;
    let x: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut o = std::io::stdout().lock();
    for name in std::env::args().skip(1) {
        let d: kiln::DType = name.parse()?;
        o.write_all(&kiln::quant::quantize(d, &x)?)?;
    }
    Ok(())
}
