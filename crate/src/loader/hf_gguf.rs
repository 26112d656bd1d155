//! A Hugging Face model folder written as an F32 GGUF file the way llama.cpp's
//! `convert_hf_to_gguf.py --outtype f32` writes it (commit 0c1e570, the
//! version `tools/gen_model_fixtures.py` reproduces and checks against): the
//! same tensor names, order and values (Q/K rows permuted for the `llama`
//! architecture, Gemma's norms stored as 1 + w, Llama-3 `rope_freqs`, Phi-3's
//! LongRoPE factors as tensors), the same hyper-parameter keys, and the
//! vocabulary of `tokenizer.json` as a GGUF tokenizer (tokens, types, merges
//! or scores, special ids, chat template). `kiln quantize`
//! takes the result as its input, so a safetensors folder becomes a
//! quantized GGUF that llama.cpp loads.
//!
//! Architectures: those Kiln runs from `config.json` (llama, mistral as
//! `llama`, qwen2, qwen3, gemma3, phi3). Tokenizers: byte-level BPE whose
//! pre-tokenizer is one llama.cpp names (GPT-2's regex, SmolLM's digit split,
//! Llama-3's, Qwen2's), and SentencePiece-style BPE with byte fallback
//! (Llama-2, Mistral v0.1, Gemma: a `llama` tokenizer with scores, see
//! `hf_spm`); others are a typed error, as llama.cpp's converter refuses a
//! pre-tokenizer it does not know. `general.name` is the folder's
//! name; llama.cpp's name/size-label heuristics are not reproduced.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use super::gguf::MetaValue;
use super::gguf_write::{TensorHeader, header, write_data, write_file};
use super::safetensors::HfFolder;
use super::{LoadError, WeightSource};
use crate::dtype::DType;
use crate::model::LlamaConfig;
use crate::ops::rope::Llama3Scaling;

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub arch: String,
    pub tensors: usize,
    pub bytes_out: u64,
}

fn bad(what: impl Into<String>) -> LoadError {
    LoadError::Corrupt(what.into())
}

/// GGUF module names a layer can have (the inverse of the folder reader's
/// name map is built by trying these).
const LAYER_MODULES: [&str; 14] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "attn_qkv",
    "attn_q_norm",
    "attn_k_norm",
    "post_attention_norm",
    "ffn_norm",
    "post_ffw_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// The GGUF name of every tensor in the folder, sorted by HF name (the
/// converter's order), or an error naming a tensor with no GGUF name. Each
/// HF name is matched against the GGUF names of its own layer (the layer
/// numbers come from the tensors, not from config.json).
fn tensor_names(folder: &HfFolder) -> Result<Vec<(String, String)>, LoadError> {
    let mut out = Vec::new();
    for hf in folder.model.tensor_names() {
        if hf.ends_with(".rotary_emb.inv_freq") {
            continue;
        }
        let layer = hf
            .strip_prefix("model.layers.")
            .and_then(|r| r.split('.').next())
            .filter(|l| l.parse::<u32>().is_ok());
        let candidates: Vec<String> = match layer {
            Some(l) => LAYER_MODULES
                .iter()
                .flat_map(|m| ["weight", "bias"].map(|kind| format!("blk.{l}.{m}.{kind}")))
                .collect(),
            None => ["token_embd.weight", "output_norm.weight", "output.weight"]
                .map(String::from)
                .to_vec(),
        };
        let g = candidates
            .into_iter()
            .find(|g| folder.model.hf_name_of(g).is_ok_and(|h| h == hf))
            .ok_or_else(|| {
                bad(format!(
                    "tensor '{hf}' has no GGUF name for this architecture"
                ))
            })?;
        out.push((hf, g));
    }
    Ok(out)
}

/// llama.cpp's `LlamaModel.permute`: HF's rotate-half Q/K rows to GGML's
/// interleaved pairs, per head (`heads` of `rows / heads` rows each).
fn permute_rows(v: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>, LoadError> {
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(bad(format!("cannot permute {rows} rows for {heads} heads")));
    }
    let half = rows / heads / 2;
    let mut out = vec![0.0f32; v.len()];
    // Source row (h, s, i) (s: which half) goes to row (h, i, s).
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..half {
                let src = (h * 2 + s) * half + i;
                let dst = (h * half + i) * 2 + s;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&v[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

fn u32v(what: &str, n: usize) -> Result<MetaValue, LoadError> {
    u32::try_from(n)
        .map(MetaValue::U32)
        .map_err(|_| bad(format!("{what} {n} does not fit a GGUF u32")))
}

/// `rope_freqs`: the divisor of each frequency under Llama-3 scaling, in
/// f32 arithmetic as `LlamaModel.generate_extra_tensors` does it (torch f32;
/// `pow` may differ from torch's in the last bit).
fn llama3_factors(cfg: &LlamaConfig, s: Llama3Scaling) -> Vec<f32> {
    let dim = cfg.head_dim;
    let old = s.original_context as f32;
    let (low_wl, high_wl) = (old / s.low_freq_factor, old / s.high_freq_factor);
    (0..dim / 2)
        .map(|j| {
            let freq = 1.0f32 / cfg.rope_base.powf((2 * j) as f32 / dim as f32);
            let wl = 2.0f32 * std::f32::consts::PI / freq;
            if wl < high_wl {
                1.0
            } else if wl > low_wl {
                s.factor
            } else {
                let smooth =
                    (old / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                1.0 / ((1.0 - smooth) / s.factor + smooth)
            }
        })
        .collect()
}

/// The hyper-parameter keys, in the converter's order.
fn hyper_parameters(
    arch: &str,
    c: &Value,
    cfg: &LlamaConfig,
) -> Result<Vec<(String, MetaValue)>, LoadError> {
    let k = |s: &str| format!("{arch}.{s}");
    let num = |key: &str| -> Result<usize, LoadError> {
        c[key]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| LoadError::MissingKey(format!("config.json: {key}")))
    };
    let eps = c["rms_norm_eps"]
        .as_f64()
        .ok_or_else(|| LoadError::MissingKey("config.json: rms_norm_eps".into()))?
        as f32;
    let ctx = num("max_position_embeddings")?;
    let mut m: Vec<(String, MetaValue)> = Vec::new();
    if arch == "phi3" {
        // Phi3MiniModel.set_gguf_parameters replaces TextModel's.
        let orig = cfg
            .long_rope
            .as_ref()
            .map(|l| l.original_ctx)
            .ok_or_else(|| LoadError::MissingKey("config.json: LongRoPE scaling".into()))?;
        m.push((k("context_length"), u32v("context", ctx)?));
        m.push((
            k("rope.scaling.original_context_length"),
            u32v("context", orig)?,
        ));
        m.push((k("embedding_length"), u32v("hidden_size", cfg.d_model)?));
        m.push((
            k("feed_forward_length"),
            u32v("intermediate_size", cfg.ffn_dim)?,
        ));
        m.push((k("block_count"), u32v("layers", cfg.n_layers)?));
        m.push((k("attention.head_count"), u32v("heads", cfg.n_heads)?));
        m.push((k("attention.head_count_kv"), u32v("heads", cfg.n_kv_heads)?));
        m.push((k("attention.layer_norm_rms_epsilon"), MetaValue::F32(eps)));
        m.push((k("rope.dimension_count"), u32v("rope dims", cfg.n_rot)?));
        m.push((k("rope.freq_base"), MetaValue::F32(cfg.rope_base)));
        m.push(("general.file_type".into(), MetaValue::U32(0)));
        m.push((
            k("attention.sliding_window"),
            u32v("window", cfg.sliding_window)?,
        ));
        return Ok(m);
    }
    m.push((k("block_count"), u32v("layers", cfg.n_layers)?));
    m.push((k("context_length"), u32v("context", ctx)?));
    m.push((k("embedding_length"), u32v("hidden_size", cfg.d_model)?));
    m.push((
        k("feed_forward_length"),
        u32v("intermediate_size", cfg.ffn_dim)?,
    ));
    m.push((k("attention.head_count"), u32v("heads", cfg.n_heads)?));
    m.push((k("attention.head_count_kv"), u32v("heads", cfg.n_kv_heads)?));
    m.push((k("rope.freq_base"), MetaValue::F32(cfg.rope_base)));
    if arch == "gemma3"
        && let Some(local) = cfg.rope_base_local
    {
        m.push((k("rope.freq_base_swa"), MetaValue::F32(local)));
    }
    m.push((k("attention.layer_norm_rms_epsilon"), MetaValue::F32(eps)));
    if c["head_dim"].as_u64().is_some() {
        m.push((k("attention.key_length"), u32v("head_dim", cfg.head_dim)?));
        m.push((k("attention.value_length"), u32v("head_dim", cfg.head_dim)?));
    }
    m.push(("general.file_type".into(), MetaValue::U32(0)));
    if arch == "gemma3" {
        if let Some(cap) = c["final_logit_softcapping"].as_f64() {
            m.push((k("final_logit_softcapping"), MetaValue::F32(cap as f32)));
        }
        if c["sliding_window_pattern"].as_u64() != Some(1) && cfg.sliding_window > 0 {
            m.push((
                k("attention.sliding_window"),
                u32v("window", cfg.sliding_window)?,
            ));
        }
    }
    if arch == "llama" {
        m.push((k("vocab_size"), u32v("vocab", cfg.vocab)?));
        m.push((k("rope.dimension_count"), u32v("head_dim", cfg.head_dim)?));
    }
    Ok(m)
}

/// The GGUF pre-tokenizer name of a `tokenizer.json` pre-tokenizer, for the
/// ones llama.cpp knows by name.
fn pre_name(pre: &Value) -> Result<&'static str, LoadError> {
    let byte_level = |v: &Value, regex: bool| {
        v["type"] == "ByteLevel" && v["use_regex"].as_bool().unwrap_or(true) == regex
    };
    if byte_level(pre, true) {
        return Ok("gpt-2");
    }
    if pre["type"] == "Sequence"
        && let Some(items) = pre["pretokenizers"].as_array()
    {
        match items.as_slice() {
            [d, b]
                if d["type"] == "Digits"
                    && d["individual_digits"] == true
                    && byte_level(b, true) =>
            {
                return Ok("smollm");
            }
            [s, b] if s["type"] == "Split" && byte_level(b, false) => {
                let pat = s["pattern"]["Regex"].as_str().unwrap_or("");
                for name in ["llama-bpe", "qwen2"] {
                    if crate::tokenizer::split_pattern_of(name) == Some(pat) {
                        return Ok(name);
                    }
                }
            }
            _ => {}
        }
    }
    Err(LoadError::Tokenizer(format!(
        "tokenizer.json's pre-tokenizer is not one llama.cpp names (GPT-2, SmolLM, Llama-3, Qwen2): {}",
        serde_json::to_string(pre)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>()
    )))
}

/// `tokenizer.json` + `tokenizer_config.json` as GGUF tokenizer keys
/// (llama.cpp's `_set_vocab_gpt2` + `SpecialVocab`; SentencePiece-style
/// vocabularies as its `_set_vocab_sentencepiece` would, see `hf_spm`).
fn vocab_keys(
    tok: &Value,
    tc: Option<&Value>,
    vocab_size: usize,
    chat_template: Option<String>,
) -> Result<Vec<(String, MetaValue)>, LoadError> {
    let model = &tok["model"];
    if model["type"] != "BPE" {
        return Err(LoadError::Tokenizer(format!(
            "tokenizer.json model type {} is not BPE (Unigram vocabularies are not converted)",
            model["type"]
        )));
    }
    let spm = super::hf_spm::is_spm(tok);
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("tokenizer.json: model.vocab is not a map"))?;
    // Ids without a token become "[PADn]" (llama.cpp's rule, for vocabularies
    // padded past the tokenizer); their number is bounded by the tokens the
    // file holds, so a config cannot make a small tokenizer a huge table.
    let held = vocab.len() + tok["added_tokens"].as_array().map_or(0, Vec::len);
    if vocab_size > 2 * held + 1024 {
        return Err(bad(format!(
            "vocab_size {vocab_size} is far past the {held} tokens of tokenizer.json"
        )));
    }
    let mut rev: Vec<Option<(String, bool, bool)>> = vec![None; vocab_size];
    let mut put = |id: u64, t: &str, added: bool, special: bool| -> Result<(), LoadError> {
        let slot = rev.get_mut(id as usize).ok_or_else(|| {
            bad(format!(
                "tokenizer.json: token id {id} ≥ vocab_size {vocab_size}"
            ))
        })?;
        *slot = Some((t.to_string(), added, special));
        Ok(())
    };
    for (t, id) in vocab {
        put(
            id.as_u64()
                .ok_or_else(|| bad("tokenizer.json: a vocab id is not a number"))?,
            t,
            false,
            false,
        )?;
    }
    let mut by_content = std::collections::HashMap::new();
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(t)) = (a["id"].as_u64(), a["content"].as_str()) else {
            return Err(bad("tokenizer.json: an added token has no id or content"));
        };
        put(id, t, true, a["special"].as_bool().unwrap_or(false))?;
        by_content.insert(t.to_string(), id as u32);
    }
    let (mut tokens, mut types) = (Vec::new(), Vec::new());
    for (i, slot) in rev.iter().enumerate() {
        let (t, ty) = match slot {
            None => (format!("[PAD{i}]"), 5), // UNUSED
            Some((t, true, special)) => {
                let looks = t.starts_with("<|") && t.ends_with("|>");
                (t.clone(), if *special || looks { 3 } else { 4 }) // CONTROL / USER_DEFINED
            }
            Some((t, false, _)) => (t.clone(), 1), // NORMAL
        };
        tokens.push(t);
        types.push(ty);
    }
    // Special tokens by content from tokenizer_config.json (a string or
    // an {"content": …} entry), else (SentencePiece files) tokenizer.json's.
    let content = |key: &str| -> Option<&str> {
        let v = &tc?[key];
        v.as_str().or_else(|| v["content"].as_str())
    };
    let special = |key: &str| -> Option<u32> {
        let s = content(key).or_else(|| spm.then(|| model[key].as_str()).flatten())?;
        // llama.cpp's SpecialVocab finds them among the added tokens; a
        // SentencePiece file's unk may be only in the vocabulary.
        by_content.get(s).copied().or_else(|| {
            spm.then(|| vocab.get(s)?.as_u64().map(|i| i as u32))
                .flatten()
        })
    };
    let mut m = if spm {
        super::hf_spm::keys(tok, tokens, types, special("unk_token"))?
    } else {
        gpt2_keys(model, pre_name(&tok["pre_tokenizer"])?, tokens, types)?
    };
    for (key, gguf) in [
        ("bos_token", "bos_token_id"),
        ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"),
        ("pad_token", "padding_token_id"),
    ] {
        if let Some(id) = special(key) {
            m.push((format!("tokenizer.ggml.{gguf}"), MetaValue::U32(id)));
        }
    }
    // add_bos/add_eos: tokenizer_config.json's flags, else false (what
    // SpecialVocab sets for a ByteLevel post-processor); a SentencePiece
    // file's BOS default is whether its post-processor adds it.
    for key in ["add_bos_token", "add_eos_token"] {
        let default = spm
            && key == "add_bos_token"
            && super::hf_spm::post_processor_adds_bos(tok, content("bos_token"));
        let on = tc.and_then(|t| t[key].as_bool()).unwrap_or(default);
        m.push((format!("tokenizer.ggml.{key}"), MetaValue::Bool(on)));
    }
    if let Some(t) = chat_template {
        m.push(("tokenizer.chat_template".into(), MetaValue::Str(t)));
    }
    Ok(m)
}

/// The `gpt2` keys: byte-level tokens, their types and merges.
fn gpt2_keys(
    model: &Value,
    pre: &str,
    tokens: Vec<String>,
    types: Vec<i32>,
) -> Result<Vec<(String, MetaValue)>, LoadError> {
    let merges: Vec<MetaValue> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            // Newer files: [left, right] pairs; GGUF keeps "left right",
            // a space inside a part written as U+0120 (llama.cpp's rule).
            Value::Array(p) if p.len() == 2 => Ok(p
                .iter()
                .map(|x| x.as_str().unwrap_or("").replace(' ', "\u{0120}"))
                .collect::<Vec<_>>()
                .join(" ")),
            _ => Err(bad(
                "tokenizer.json: a merge is neither a string nor a pair",
            )),
        })
        .map(|r| r.map(MetaValue::Str))
        .collect::<Result<_, _>>()?;
    Ok(vec![
        ("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre".into(), MetaValue::Str(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            MetaValue::Array(tokens.into_iter().map(MetaValue::Str).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), MetaValue::Array(merges)),
    ])
}

/// The GGUF tokenizer keys for a `tokenizer.json` (and its
/// `tokenizer_config.json`) with `vocab_size` ids, as the converter writes
/// them.
pub fn tokenizer_metadata(
    tokenizer_json: &[u8],
    tokenizer_config: Option<&[u8]>,
    vocab_size: usize,
) -> Result<Vec<(String, MetaValue)>, LoadError> {
    let parse = |b: &[u8], what: &str| -> Result<Value, LoadError> {
        serde_json::from_slice(b).map_err(|e| bad(format!("{what}: {e}")))
    };
    let tok = parse(tokenizer_json, "tokenizer.json")?;
    let tc = tokenizer_config
        .map(|b| parse(b, "tokenizer_config.json"))
        .transpose()?;
    vocab_keys(&tok, tc.as_ref(), vocab_size, None)
}

/// Converts folder `dir` to `output` (written as `OUT.part`, renamed when
/// complete). `progress(done, total)` may return false to cancel.
pub fn convert_hf_folder(
    dir: &Path,
    output: &Path,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<ConvertReport, LoadError> {
    let mut folder = HfFolder::open(dir, None)?;
    let tok_path = dir.join("tokenizer.json");
    let tok = std::fs::read(&tok_path)
        .map_err(|e| LoadError::Io(format!("{}: {e}", tok_path.display())))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let mut report = None;
    write_file(output, &mut |w| {
        let r = convert_folder(&mut folder, &tok, &name, w, progress)?;
        let n = r.bytes_out;
        report = Some(r);
        Ok(n)
    })?;
    report.ok_or_else(|| bad("conversion wrote nothing"))
}

/// Converts an opened folder (its `tokenizer.json` bytes beside it) into
/// `out`; `name` becomes `general.name`. In memory too (the fuzz target
/// writes to a sink).
pub fn convert_folder(
    folder: &mut HfFolder,
    tokenizer_json: &[u8],
    name: &str,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<ConvertReport, LoadError> {
    let cfg = folder.model.llama_config()?;
    let c = folder.model.config.clone();
    let arch = match cfg.arch.as_str() {
        "mistral" => "llama".to_string(),
        a => a.to_string(),
    };
    let tok: Value =
        serde_json::from_slice(tokenizer_json).map_err(|e| bad(format!("tokenizer.json: {e}")))?;
    let tc: Option<Value> = folder.model.tokenizer_config().cloned();
    let names = tensor_names(folder)?;
    // Sizes from config.json are bounded by the tensors the folder holds
    // before anything is allocated from them: the vocabulary by the
    // embedding's rows, the rotary dimension by a row of Q.
    let (embd, _) = folder.info("token_embd.weight")?;
    if embd.first() != Some(&cfg.vocab) {
        return Err(bad(format!(
            "config.json: vocab_size {} but the embedding has {:?} rows",
            cfg.vocab,
            embd.first()
        )));
    }
    let layers = names
        .iter()
        .filter_map(|(_, g)| {
            g.strip_prefix("blk.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |l| l + 1);
    if cfg.n_layers != layers {
        return Err(bad(format!(
            "config.json: num_hidden_layers {} but the tensors hold {layers} layers",
            cfg.n_layers
        )));
    }
    if cfg.head_dim == 0 || cfg.head_dim > cfg.d_model.max(1) * 4 {
        return Err(bad(format!(
            "config.json: head_dim {} does not fit hidden_size {}",
            cfg.head_dim, cfg.d_model
        )));
    }

    // Tensors computed from config.json come first (generate_extra_tensors).
    let mut extra: Vec<(String, Vec<f32>)> = Vec::new();
    let rope_type = [&c["rope_scaling"], &c["rope_parameters"]]
        .into_iter()
        .find_map(|r| r["rope_type"].as_str().or(r["type"].as_str()))
        .unwrap_or("default");
    match rope_type {
        "default" | "llama3" => {}
        "longrope" if arch == "phi3" => {}
        // Written below as llama.cpp's rope.scaling keys.
        "linear" => {}
        other => {
            return Err(bad(format!(
                "config.json: rope scaling '{other}' is not convertible (default, linear, llama3, and Phi-3's longrope are)"
            )));
        }
    }
    if rope_type == "llama3"
        && let Some(s) = cfg.rope_scaling
    {
        extra.push(("rope_freqs.weight".into(), llama3_factors(&cfg, s)));
    }
    if arch == "phi3" {
        for name in ["rope_factors_long.weight", "rope_factors_short.weight"] {
            let t = folder.read(name)?;
            extra.push((name.into(), t.to_f32()?));
        }
    }
    let mut infos: Vec<TensorHeader> = extra
        .iter()
        .map(|(n, v)| TensorHeader {
            name: n.clone(),
            shape: vec![v.len()],
            dtype: DType::F32,
        })
        .collect();
    for (_, g) in &names {
        let (shape, _) = folder.info(g)?;
        infos.push(TensorHeader {
            name: g.clone(),
            shape,
            dtype: DType::F32,
        });
    }

    let mut metadata: Vec<(String, MetaValue)> =
        vec![("general.architecture".into(), MetaValue::Str(arch.clone()))];
    if arch == "phi3"
        && let Some(l) = &cfg.long_rope
    {
        metadata.push((
            "phi3.rope.scaling.attn_factor".into(),
            MetaValue::F32(l.attn_factor),
        ));
    }
    metadata.push(("general.type".into(), MetaValue::Str("model".into())));
    metadata.push(("general.name".into(), MetaValue::Str(name.into())));
    metadata.extend(hyper_parameters(&arch, &c, &cfg)?);
    if rope_type == "linear" {
        let factor = cfg.rope_scaling.map(|s| s.factor).ok_or_else(|| {
            LoadError::MissingKey("config.json: linear rope scaling factor".into())
        })?;
        metadata.push((
            format!("{arch}.rope.scaling.type"),
            MetaValue::Str("linear".into()),
        ));
        metadata.push((
            format!("{arch}.rope.scaling.factor"),
            MetaValue::F32(factor),
        ));
    }
    metadata.push(("general.quantization_version".into(), MetaValue::U32(2)));
    metadata.extend(vocab_keys(
        &tok,
        tc.as_ref(),
        cfg.vocab,
        folder.model.chat_template(),
    )?);

    let (head, align) = header(&metadata, &infos)?;
    let total = infos.len();
    let mut body = |w: &mut dyn Write| -> Result<u64, LoadError> {
        w.write_all(&head)?;
        let mut n = head.len() as u64;
        for (i, info) in infos.iter().enumerate() {
            let values = match extra.get(i) {
                Some((_, v)) => v.clone(),
                None => {
                    let (hf, g) = &names[i - extra.len()];
                    let v = folder.read(g)?.to_f32()?;
                    let rows = info.shape.first().copied().unwrap_or(1);
                    let cols = if info.shape.len() > 1 {
                        v.len() / rows.max(1)
                    } else {
                        1
                    };
                    let q = hf.contains("self_attn.q_proj.");
                    let k = hf.contains("self_attn.k_proj.");
                    if arch == "llama" && (q || k) {
                        let heads = if q { cfg.n_heads } else { cfg.n_kv_heads };
                        permute_rows(&v, rows, cols, heads)?
                    } else {
                        v
                    }
                }
            };
            let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            n += write_data(w, info, &bytes, align)?;
            if !progress(i + 1, total) {
                return Err(LoadError::Cancelled);
            }
        }
        Ok(n)
    };
    let bytes_out = body(out)?;
    Ok(ConvertReport {
        arch,
        tensors: total,
        bytes_out,
    })
}
