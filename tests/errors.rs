//! Bad input to the public API returns a typed error, never a panic: shape
//! mismatches, unsupported dtypes, tensors over the device's binding limit,
//! wrong data, out-of-range ids and positions.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::{Backend, BackendError};
use kiln::ops::rope::{Rope, RopeMode};
use kiln::{DType, Graph, HostTensor, KilnError};

#[test]
fn graph_building_rejects_bad_shapes_and_dtypes() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 64], DType::F32).unwrap();
    let w = g.weight("w", &[8, 32], DType::Q4_0).unwrap();
    assert!(matches!(
        g.matmul(x, w),
        Err(KilnError::Shape { op: "mul_mat", .. })
    ));

    let xh = g.input("xh", &[2, 32], DType::F16).unwrap();
    assert!(matches!(
        g.matmul(xh, w),
        Err(KilnError::UnsupportedDType { op: "mul_mat", .. })
    ));
    assert!(matches!(g.silu(w), Err(KilnError::UnsupportedDType { .. })));

    // A quantized row must be whole blocks.
    assert!(matches!(
        g.weight("bad", &[4, 33], DType::Q8_0),
        Err(KilnError::BlockMisaligned { .. })
    ));
    assert!(g.input("empty", &[0, 4], DType::F32).is_err());

    let y = g.input("y", &[3, 64], DType::F32).unwrap();
    assert!(matches!(g.add(x, y), Err(KilnError::Shape { .. })));
    let pos = g.sym("pos");
    let odd = g.input("odd", &[1, 2, 5], DType::F32).unwrap();
    let rope = Rope {
        mode: RopeMode::Normal,
        n_rot: 5,
        base: 1e4,
        scaling: None,
        pos,
        period: 0,
        inverse: false,
    };
    assert!(matches!(
        g.rope(odd, rope),
        Err(KilnError::BadParam { op: "rope", .. })
    ));

    let q = g.input("q", &[1, 4, 64], DType::F32).unwrap();
    let k = g.state("k", &[3, 16, 64], DType::F32).unwrap();
    assert!(
        matches!(
            g.attention(q, k, k, 0.125, pos),
            Err(KilnError::Shape { .. })
        ),
        "4 heads over 3 kv heads"
    );
    let kq = g.state("kq", &[2, 16, 64], DType::Q8_0).unwrap();
    assert!(matches!(
        g.attention(q, kq, kq, 0.125, pos),
        Err(KilnError::UnsupportedDType { .. })
    ));
    // In-place writes need a state destination.
    let src = g.input("src", &[1, 2, 64], DType::F32).unwrap();
    let not_state = g.input("c", &[2, 16, 64], DType::F32).unwrap();
    assert!(matches!(
        g.write_cache(not_state, src, pos),
        Err(KilnError::BadParam { .. })
    ));
    assert!(matches!(
        DType::from_ggml_type(16),
        Err(KilnError::UnsupportedGgmlType(16))
    ));
}

/// (graph, cache state, src input, ids input, an intermediate that is not an output)
type CacheGraph = (
    Graph,
    kiln::TensorId,
    kiln::TensorId,
    kiln::TensorId,
    kiln::TensorId,
);

fn cache_graph() -> CacheGraph {
    let mut g = Graph::new();
    let pos = g.sym("pos");
    let cache = g.state("k", &[2, 8, 4], DType::F32).unwrap();
    let src = g.input("src", &[3, 2, 4], DType::F32).unwrap();
    let out = g.write_cache(cache, src, pos).unwrap();
    let ids = g.input("ids", &[2], DType::U32).unwrap();
    let table = g.weight("emb", &[10, 32], DType::Q8_0).unwrap();
    let e = g.get_rows(table, ids).unwrap();
    g.mark_output(e).unwrap();
    let hidden = g.silu(e).unwrap();
    (g, out, src, ids, hidden)
}

fn check_runtime_errors(backend: &dyn Backend) {
    let (g, cache, src, ids, hidden) = cache_graph();
    let mut exe = backend.compile(&g).unwrap();
    // Wrong shape / dtype / length of data.
    let wrong = HostTensor::zeros(&[2, 2, 4], DType::F32).unwrap();
    assert!(matches!(
        exe.write(src, &wrong),
        Err(BackendError::Tensor { .. })
    ));
    let wrong_dtype = HostTensor::zeros(&[3, 2, 4], DType::F16).unwrap();
    assert!(matches!(
        exe.write(src, &wrong_dtype),
        Err(BackendError::Tensor { .. })
    ));
    // Token ids past the table.
    let bad_ids = HostTensor::from_u32(&[2], &[3, 10]).unwrap();
    assert!(matches!(
        exe.write(ids, &bad_ids),
        Err(BackendError::Graph(KilnError::IndexOutOfRange {
            id: 10,
            rows: 10
        }))
    ));
    // A position that would write past the cache (8 rows, 3 new at 6).
    assert!(matches!(
        exe.run(&[6]),
        Err(BackendError::Graph(KilnError::SymbolRange { value: 6, .. }))
    ));
    assert!(matches!(
        exe.run(&[]),
        Err(BackendError::Graph(KilnError::BadParam { .. }))
    ));
    exe.run(&[5]).unwrap();
    // Intermediates that are not outputs cannot be read; outputs and state can.
    assert!(matches!(exe.read(hidden), Err(BackendError::Tensor { .. })));
    assert!(exe.read(g.outputs[0]).is_ok(), "outputs are readable");
    assert!(exe.read(cache).is_ok(), "state tensors are readable");
    assert!(exe.read(kiln::TensorId(999)).is_err());
}

#[test]
fn runtime_errors_on_the_cpu_reference() {
    check_runtime_errors(&CpuBackend);
}

#[test]
fn runtime_errors_on_wgpu() {
    let Some(gpu) = common::gpu() else { return };
    check_runtime_errors(&gpu);
}

#[test]
fn tensors_over_the_binding_limit_are_typed_errors() {
    let Some(gpu) = common::gpu() else { return };
    let mut g = Graph::new();
    // 2^30 f32 = 4 GiB: over every device's binding and buffer limits, and not
    // splittable (an activation).
    let a = g.input("a", &[1 << 15, 1 << 15], DType::F32).unwrap();
    let b = g.add(a, a).unwrap();
    g.mark_output(b).unwrap();
    match gpu.compile(&g) {
        Err(BackendError::BindingTooLarge { name, bytes, limit }) => {
            assert_eq!(name, "a");
            assert_eq!(bytes, 1 << 32);
            assert!(limit < bytes);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a 4 GiB binding compiled"),
    }
    // A weight whose single row exceeds the binding limit cannot be split.
    let mut g = Graph::new();
    let x = g.input("x", &[1, 4096], DType::F32).unwrap();
    let w = g.weight("w", &[4, 4096], DType::F32).unwrap();
    let y = g.matmul(x, w).unwrap();
    g.mark_output(y).unwrap();
    let tiny = gpu.with_binding_limit(8192);
    assert!(matches!(
        tiny.compile(&g),
        Err(BackendError::BindingTooLarge { .. })
    ));
}

/// Chat templates are code from the model file: a runaway loop, deep
/// recursion, a value doubled into gigabytes or a giant prompt stop with
/// `TEMPLATE_LIMIT` in bounded time, and ordinary templates still render a
/// long conversation.
#[test]
fn hostile_chat_templates_stop_with_typed_errors() {
    use kiln::generate::{CHATML, ChatMessage, ChatTemplate};
    let msgs = vec![ChatMessage::new("user", "hi")];
    for (what, src) in [
        (
            "nested loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        ),
        (
            "recursion",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ),
        (
            "output",
            "{% for i in range(1000) %}{{ 'x' * 1000000 }}{% endfor %}",
        ),
        // Amplification: a few instructions doubling a value 2^40-fold
        // (fuel is charged for the bytes a string or list operation makes).
        (
            "string doubling with ~",
            "{% set ns = namespace(s='abcdefgh') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        ),
        (
            "string doubling with +",
            "{% set ns = namespace(s='abcdefgh') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        ),
        (
            "string repetition",
            "{% set s = 'x' * 100000000 %}{% set t = s * 50 %}{{ t|length }}",
        ),
        (
            "join of a long list",
            "{% set l = ['abcdefgh'] * 1000000 %}{{ (l|join(l|join))|length }}",
        ),
        ("wide indent", "{{ 'a\nb'|indent(4000000000) }}"),
        // Lazy list concatenation, charged by the vendored minijinja's one
        // change (vendor/README.md): 2^33 items before it.
        (
            "list doubling",
            "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
        ),
        // The fuzz finding of 2026-12-06 (84 MB from one repetition).
        (
            "one large repetition",
            "{{ 'abcdefghijklmnopqrstuvwxyzabcdefghijkl' * 2222222 }}",
        ),
    ] {
        let t = ChatTemplate::new(src, "", "").unwrap();
        let t0 = std::time::Instant::now();
        let e = t.render(&msgs, true).unwrap_err();
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("{what}: {e} ({secs:.2} s)");
        assert_eq!(e.code(), "TEMPLATE_LIMIT", "{what}: {e}");
        assert!(secs < 20.0, "{what} took {secs:.1} s");
    }
    // A 2000-message conversation through ChatML stays within the limits.
    let long: Vec<ChatMessage> = (0..2000)
        .map(|i| ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, "some words"))
        .collect();
    let t = ChatTemplate::new(CHATML, "", "").unwrap();
    assert!(t.render(&long, true).unwrap().len() > 2000 * 20);
    // So does Llama-3's own template (system-prompt and tool logic), and
    // SmolLM2's, with 2000 messages of 1 KB each.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/models/llama3/tokenizer_config.json"))
            .unwrap(),
    )
    .unwrap();
    let (smol, _) =
        kiln::loader::gguf::GgufFile::open(&root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
            .unwrap();
    let words = "some words ".repeat(93);
    let long: Vec<ChatMessage> = (0..2000)
        .map(|i| ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, &words))
        .collect();
    for src in [
        tc["chat_template"].as_str().unwrap(),
        smol.chat_template().unwrap(),
    ] {
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert!(t.render(&long, true).unwrap().len() > 2000 * 1000);
    }
}

/// Out of device memory (a budget below what two copies of the model need)
/// is `OUT_OF_MEMORY`, the failed load leaves nothing allocated, and the next
/// load on the same device works; a destroyed device mid-session is
/// `DEVICE_LOST`, and a new device works.
#[test]
fn out_of_memory_and_lost_devices_are_recoverable() {
    use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};
    use kiln::generate::{GenerateParams, TextModel};
    use kiln::model::llama::LlamaOptions;
    if common::gpu().is_none() {
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/llama3/llama3.F32.gguf");
    let opts = LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        ..Default::default()
    };
    let open = |b: &WgpuBackend| TextModel::open(&path, b, &opts, None, &mut |_, _| true);
    let params = GenerateParams {
        max_tokens: 4,
        ignore_eos: true,
        ..Default::default()
    };
    let probe = WgpuBackend::new(&WgpuOptions::default()).unwrap();
    let m = open(&probe).unwrap();
    let need = probe.ctx.allocated_bytes();
    assert!(need > 0);
    drop(m);
    assert_eq!(
        probe.ctx.allocated_bytes(),
        0,
        "a dropped model frees its buffers"
    );

    let b = WgpuBackend::new(&WgpuOptions {
        max_device_bytes: Some(need + need / 2),
        ..Default::default()
    })
    .unwrap();
    let first = open(&b).unwrap();
    let e = open(&b).err().expect("a second copy exceeds the budget");
    assert_eq!(e.code(), "OUT_OF_MEMORY", "{e}");
    assert_eq!(
        b.ctx.allocated_bytes(),
        need,
        "the failed load holds nothing"
    );
    drop(first);
    let mut again = open(&b).unwrap();
    let want = again
        .generate_ids(&[1, 2, 3], &params, &mut |_| true)
        .unwrap();

    b.ctx.destroy_device();
    again.llm.reset();
    let e = again
        .generate_ids(&[1, 2, 3], &params, &mut |_| true)
        .expect_err("a destroyed device fails");
    assert_eq!(e.code(), "DEVICE_LOST", "{e}");
    let fresh = WgpuBackend::new(&WgpuOptions::default()).unwrap();
    let got = open(&fresh)
        .unwrap()
        .generate_ids(&[1, 2, 3], &params, &mut |_| true)
        .unwrap();
    assert_eq!(
        got.tokens, want.tokens,
        "a new device gives the same tokens"
    );

    // Lost in the middle of a generation (the device destroyed from the
    // token callback, with the next step already queued when pipelined):
    // `DEVICE_LOST`, no hang, no panic, and the tokens before it were
    // handed out.
    for pipelined in [true, false] {
        let b = WgpuBackend::new(&WgpuOptions::default()).unwrap();
        let mut m = open(&b).unwrap();
        m.pipelined = pipelined;
        let long = GenerateParams {
            max_tokens: 24,
            ..params.clone()
        };
        let mut seen = 0;
        let e = m
            .generate_ids(&[1, 2, 3], &long, &mut |_| {
                seen += 1;
                if seen == 3 {
                    b.ctx.destroy_device();
                }
                true
            })
            .expect_err("the device was lost mid-generation");
        assert_eq!(e.code(), "DEVICE_LOST", "pipelined {pipelined}: {e}");
        assert!(
            (3..24).contains(&seen),
            "pipelined {pipelined}: {seen} tokens"
        );
    }
}
