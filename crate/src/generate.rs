//! Text generation: chat templates (the model's own Jinja template, rendered
//! with minijinja), the generation loop with streaming, stop strings, EOS and
//! token limits, and KV-cache prefix reuse across chat turns.

use web_time::Instant;

#[cfg(not(target_arch = "wasm32"))]
use crate::backend::Backend;
use crate::llm::Llm;
#[cfg(not(target_arch = "wasm32"))]
use crate::llm::Progress;
use crate::loader::LoadError;
#[cfg(not(target_arch = "wasm32"))]
use crate::model::llama::LlamaOptions;
use crate::sample::{Sampler, SamplingParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// ChatML, for models that ship no template (and no Gemma turn markers).
pub const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Gemma's turn format, for Gemma files without a template (llama.cpp's
/// GGUFs of Gemma 3 270M ship none): BOS, a system message folded into the
/// first user turn as Gemma 3's own template does, `assistant` called
/// `model`, each turn `<start_of_turn>ROLE\n…<end_of_turn>\n`.
pub const GEMMA: &str = "{{ bos_token }}{% if messages and messages[0].role == 'system' %}{% set sys = messages[0].content ~ '\n\n' %}{% set turns = messages[1:] %}{% else %}{% set sys = '' %}{% set turns = messages %}{% endif %}{% for m in turns %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ (sys if loop.first else '') ~ m.content | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, LoadError> {
        let mut env = minijinja::Environment::new();
        // Templates are code from the model file: bound their work.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(TEMPLATE_RECURSION);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LoadError::Tokenizer(format!("chat template: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos: bos.into(),
            eos: eos.into(),
        })
    }

    /// The model's template with its BOS/EOS text; when it ships none,
    /// Gemma's turns if the vocabulary has Gemma's turn markers, else ChatML.
    pub fn for_tokenizer(
        template: Option<&str>,
        tokenizer: &Tokenizer,
    ) -> Result<ChatTemplate, LoadError> {
        let piece = |id: Option<u32>| {
            id.and_then(|i| tokenizer.decode(&[i], false).ok())
                .unwrap_or_default()
        };
        let gemma = ["<start_of_turn>", "<end_of_turn>"]
            .iter()
            .all(|t| tokenizer.token_id(t).is_some());
        ChatTemplate::new(
            template.unwrap_or(if gemma { GEMMA } else { CHATML }),
            &piece(tokenizer.bos()),
            &piece(tokenizer.eos()),
        )
    }

    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, LoadError> {
        let msgs: Vec<_> = messages
            .iter()
            .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| LoadError::Tokenizer(format!("chat template: {e}")))?;
        let mut out = Capped(Vec::new());
        t.render_captured_to(
            minijinja::context! {
                messages => msgs,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos.as_str(),
                eos_token => self.eos.as_str(),
            },
            &mut out,
        )
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::OutOfFuel => LoadError::TemplateLimit(format!(
                "more than {TEMPLATE_FUEL} units of work (instructions and bytes made: a runaway loop or an amplified value?)"
            )),
            minijinja::ErrorKind::WriteFailure => {
                LoadError::TemplateLimit(format!("the prompt exceeds {TEMPLATE_OUTPUT} bytes"))
            }
            _ if e.to_string().contains("recursion limit") => {
                LoadError::TemplateLimit(format!("recursion deeper than {TEMPLATE_RECURSION}"))
            }
            _ => LoadError::Tokenizer(format!("chat template: {e}")),
        })?;
        String::from_utf8(out.0)
            .map_err(|_| LoadError::Tokenizer("chat template: output is not UTF-8".into()))
    }
}

/// Limits of chat-template rendering: work (minijinja fuel: one unit per
/// instruction, and one per 64 bytes — or two list slots — that a string
/// or sequence operation makes, checked before it allocates; 480 k units
/// pay for 480 k instructions or 30.7 MB of values, while 2,000 messages of
/// 1 KB through Llama-3's and SmolLM2's templates fit), call depth, and
/// output bytes (a prompt far beyond any context window). The value budget
/// plus the output cap keep a render under the 64 MiB that the fuzz
/// harness allows a small input. Lazy list concatenation (`l + l`) is
/// charged by the vendored minijinja's one change (vendor/README.md);
/// without it a list doubled in a loop grew to 2³³ items uncharged.
pub const TEMPLATE_FUEL: u64 = 480_000;
pub const TEMPLATE_RECURSION: usize = 100;
pub const TEMPLATE_OUTPUT: usize = 16 << 20;

/// A writer that refuses to grow past [`TEMPLATE_OUTPUT`] bytes.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > TEMPLATE_OUTPUT {
            return Err(std::io::Error::other("template output limit"));
        }
        // Grow by doubling, but never past the cap (a plain Vec would
        // reserve up to twice it).
        let need = self.0.len() + buf.len();
        if need > self.0.capacity() {
            let want = need.max(2 * self.0.capacity()).min(TEMPLATE_OUTPUT);
            self.0.reserve_exact(want - self.0.len());
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub sampling: SamplingParams,
    /// Keep going past end-of-sequence tokens.
    pub ignore_eos: bool,
    /// When the context window fills: keep the start of the prompt (up to
    /// a quarter of the window), drop the older half of the rest, recompute
    /// the kept tokens' cache at their new positions and go on (a sliding
    /// window, like llama.cpp's context shift). Off: generation ends with
    /// [`FinishReason::ContextFull`].
    pub context_shift: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            stop: Vec::new(),
            sampling: SamplingParams::default(),
            ignore_eos: false,
            context_shift: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The context is full.
    ContextFull,
    /// The callback asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens actually computed (the rest came from the cache).
    pub prefilled_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

/// A language model with its tokenizer and chat template.
pub struct TextModel {
    pub llm: Llm,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub eos: Vec<u32>,
    /// Greedy decoding with the device feeding tokens back to itself (see
    /// [`Llm::greedy_pipelined`]). Faster on GPUs; on CPU adapters, where
    /// the "device" shares the host's cores, one step at a time measured
    /// faster (lavapipe 7.5 vs 6.4 tok/s), so callers turn it off there.
    pub pipelined: bool,
}

impl TextModel {
    /// Loads a model — a GGUF file, or a Hugging Face folder (`config.json`,
    /// safetensors, `tokenizer.json`) whose matrices are optionally
    /// quantized on load — with its tokenizer and chat template (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(
        path: &std::path::Path,
        backend: &dyn Backend,
        opts: &LlamaOptions,
        quantize: Option<crate::DType>,
        progress: Progress,
    ) -> Result<TextModel, LoadError> {
        TextModel::open_with(path, backend, opts, quantize, None, progress)
    }

    /// [`TextModel::open`], optionally with LoRA adapters merged into the
    /// weights they target (`(adapters with scales, F32 | F16)`, see
    /// [`crate::train::merge`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_with(
        path: &std::path::Path,
        backend: &dyn Backend,
        opts: &LlamaOptions,
        quantize: Option<crate::DType>,
        merge: Option<(Vec<(crate::train::lora::Adapter, f32)>, crate::DType)>,
        progress: Progress,
    ) -> Result<TextModel, LoadError> {
        use crate::loader::WeightSource;
        let tok_err = |e: crate::tokenizer::TokenizerError| LoadError::Tokenizer(e.to_string());
        let load = |config: &crate::model::LlamaConfig,
                    src: &mut dyn WeightSource,
                    progress: Progress|
         -> Result<Llm, LoadError> {
            match merge.clone() {
                Some((adapters, dtype)) => {
                    let mut m = crate::train::merge::merged(src, config, adapters, dtype)?;
                    Llm::load(config, &mut m, backend, opts, progress)
                }
                None => Llm::load(config, src, backend, opts, progress),
            }
        };
        if path.is_dir() {
            let mut folder = crate::loader::safetensors::HfFolder::open(path, quantize)?;
            let config = folder.llama_config()?;
            let llm = load(&config, &mut folder, progress)?;
            let json = std::fs::read(path.join("tokenizer.json")).map_err(|e| {
                LoadError::Io(format!("{}: {e}", path.join("tokenizer.json").display()))
            })?;
            let tokenizer = folder.model.tokenizer(&json)?;
            let eos_ids = folder.special_ids("eos_token_id");
            let template = folder.chat_template();
            return TextModel::assemble(llm, tokenizer, template.as_deref(), eos_ids);
        }
        if quantize.is_some() {
            return Err(LoadError::Corrupt(
                "quantize-on-load applies to safetensors folders; GGUF weights load as stored"
                    .into(),
            ));
        }
        let (gguf, mut file) = crate::loader::gguf::GgufFile::open(path)?;
        let config = crate::model::LlamaConfig::from_gguf(&gguf)?;
        let mut src = crate::loader::gguf::GgufSource {
            file: &gguf,
            reader: &mut file,
        };
        let llm = load(&config, &mut src, progress)?;
        let tokenizer = Tokenizer::from_spec(&gguf.tokenizer_spec()?).map_err(tok_err)?;
        TextModel::assemble(llm, tokenizer, gguf.chat_template(), Vec::new())
    }

    /// Puts a loaded model together with its tokenizer and template; EOS ids
    /// are the tokenizer's, the given ones, and the usual chat end markers.
    pub fn assemble(
        llm: Llm,
        tokenizer: Tokenizer,
        template: Option<&str>,
        mut eos: Vec<u32>,
    ) -> Result<TextModel, LoadError> {
        let template = ChatTemplate::for_tokenizer(template, &tokenizer)?;
        eos.extend(tokenizer.eos());
        for end in [
            "<|im_end|>",
            "<|eot_id|>",
            "<|endoftext|>",
            "<|end|>",
            "<end_of_turn>",
            "</s>",
        ] {
            if let Some(id) = tokenizer.token_id(end)
                && !eos.contains(&id)
            {
                eos.push(id);
            }
        }
        eos.dedup();
        Ok(TextModel {
            llm,
            tokenizer,
            template,
            eos,
            pipelined: true,
        })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LoadError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))
    }

    /// Renders a conversation with the model's template and generates the
    /// assistant's reply.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LoadError> {
        let ids = self.chat_prompt(messages)?;
        self.generate_ids(&ids, params, on_text)
    }

    /// The token ids of a conversation rendered with the model's template,
    /// ready for the assistant's reply.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, LoadError> {
        let prompt = self.template.render(messages, true)?;
        self.tokenizer
            .encode(&prompt, false)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))
    }

    /// Generates a continuation of `prompt_ids`, streaming text to `on_text`
    /// (return false to stop). Tokens already in the KV cache as a prefix of
    /// `prompt_ids` are not recomputed.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate_ids(
        &mut self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LoadError> {
        pollster::block_on(self.generate_ids_async(prompt_ids, params, on_text))
    }

    /// [`TextModel::generate_ids`] for hosts that must not block (the web):
    /// every read of the device is awaited.
    pub async fn generate_ids_async(
        &mut self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LoadError> {
        if prompt_ids.is_empty() {
            return Err(LoadError::Tokenizer("the prompt is empty".into()));
        }
        let start = Instant::now();
        let mut common = self
            .llm
            .tokens
            .iter()
            .zip(prompt_ids)
            .take_while(|(a, b)| a == b)
            .count();
        common = common.min(prompt_ids.len() - 1);
        self.llm.truncate(common);
        self.llm.feed(&prompt_ids[common..])?;
        let mut sampler = Sampler::new(params.sampling.clone());
        let mut stream = StreamDecoder::new(&self.tokenizer, true);
        let hold = params
            .stop
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        let (mut text, mut emitted) = (String::new(), 0usize);
        let mut tokens = Vec::new();
        let finish = std::cell::Cell::new(FinishReason::Length);
        let handed = std::cell::Cell::new(0usize);
        let mut prefill_secs = None;
        let eos = &self.eos;
        // Handles one generated token; false ends generation.
        let mut take = |next: u32| -> Result<bool, LoadError> {
            prefill_secs.get_or_insert(start.elapsed().as_secs_f64());
            if !params.ignore_eos && eos.contains(&next) {
                finish.set(FinishReason::Stop);
                return Ok(false);
            }
            tokens.push(next);
            handed.set(tokens.len());
            text.push_str(
                &stream
                    .push(next)
                    .map_err(|e| LoadError::Tokenizer(e.to_string()))?,
            );
            if let Some(cut) = params
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(cut);
                finish.set(FinishReason::Stop);
                return Ok(false);
            }
            let mut safe = text.len().saturating_sub(hold).max(emitted);
            while !text.is_char_boundary(safe) {
                safe -= 1;
            }
            if safe > emitted && !on_text(&text[emitted..safe]) {
                emitted = safe;
                finish.set(FinishReason::Cancelled);
                return Ok(false);
            }
            emitted = emitted.max(safe);
            Ok(tokens.len() < params.max_tokens)
        };
        let mut last_token = None;
        loop {
            let (cached, before) = (self.llm.tokens.len(), handed.get());
            let room = self.llm.max_ctx().saturating_sub(cached) + 1;
            let budget = (params.max_tokens - before).min(room);
            // The last token handed out, kept for a context shift.
            let mut take_round = |t: u32| {
                last_token = Some(t);
                take(t)
            };
            if params.sampling.is_plain_greedy() && self.pipelined {
                // The device feeds each argmax back to itself; the host only
                // reads 4 bytes per token, one step behind.
                self.llm
                    .greedy_pipelined_async(budget, &mut take_round)
                    .await?;
            } else {
                let greedy = params.sampling.is_plain_greedy();
                for _ in 0..budget {
                    let next = if greedy {
                        // The device's argmax: 4 bytes back, not the logits.
                        self.llm.greedy_async().await?
                    } else {
                        let mut logits = self.llm.logits_async().await?;
                        sampler.sample(&mut logits, &self.llm.tokens)
                    };
                    if !take_round(next)? || self.llm.tokens.len() >= self.llm.max_ctx() {
                        break;
                    }
                    self.llm.feed(&[next])?;
                }
            }
            let produced = handed.get();
            if finish.get() != FinishReason::Length || produced >= params.max_tokens {
                break;
            }
            if !params.context_shift {
                finish.set(FinishReason::ContextFull);
                break;
            }
            // The window is full: every token handed out is cached except
            // possibly the last one.
            let mut seq = self.llm.tokens.clone();
            if seq.len() < cached + (produced - before)
                && let Some(t) = last_token
            {
                seq.push(t);
            }
            let keep = prompt_ids.len().min(self.llm.max_ctx() / 4);
            let discard = (seq.len() - keep.min(seq.len())).div_ceil(2);
            let kept: Vec<u32> = seq[..keep]
                .iter()
                .chain(&seq[keep + discard..])
                .copied()
                .collect();
            self.llm.truncate(keep);
            self.llm.feed(&kept[keep..])?;
        }
        let finish = finish.get();
        if finish != FinishReason::Stop {
            text.push_str(
                &stream
                    .finish()
                    .map_err(|e| LoadError::Tokenizer(e.to_string()))?,
            );
        }
        if emitted < text.len() && finish != FinishReason::Cancelled {
            on_text(&text[emitted..]);
        }
        let prefill = prefill_secs.unwrap_or_else(|| start.elapsed().as_secs_f64());
        Ok(Generation {
            tokens,
            text,
            finish,
            prompt_tokens: prompt_ids.len(),
            prefilled_tokens: prompt_ids.len() - common,
            prefill_secs: prefill,
            decode_secs: start.elapsed().as_secs_f64() - prefill,
        })
    }
}
