//! Builds `gemv1_host.cpp` (the CUDA twin's wide-load GEMV header compiled as
//! host C++) with g++ and runs it with a fresh seed: the half-block decoders
//! must agree with ggml's dequantization, no GPU needed.

use std::process::Command;

#[test]
fn gemv1_half_blocks_match_dequantization() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let out = std::env::temp_dir().join(format!("kiln-gemv1-host-{}", std::process::id()));
    let build = Command::new("g++")
        .args(["-O1", "-std=c++17", "-o"])
        .arg(&out)
        .arg(dir.join("gemv1_host.cpp"))
        .output()
        .expect("g++ (the C++ compiler) must be installed");
    assert!(
        build.status.success(),
        "g++ failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let run = Command::new(&out).arg(seed.to_string()).output().unwrap();
    let _ = std::fs::remove_file(&out);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "seed {seed}:\n{text}");
    assert!(
        text.lines().count() == 19,
        "seed {seed}: expected 12 sums and 6 four-row checks:\n{text}"
    );
}
