// The public model object: streaming generation, OpenAI-shaped chat
// completions, tokenization. It drives a DirectModel (this thread) or a
// WorkerModel (proxy to a worker) through the same small interface.
import { KilnError, aborted } from './errors.js';
import { LoRAAdapter } from './adapter.js';

/** An async queue that a producer pushes to and `for await` drains. */
function channel() {
  const items = [];
  let wake = null;
  let done = false;
  let failure = null;
  let cancelled = false;
  const notify = () => { if (wake) { wake(); wake = null; } };
  return {
    push(v) { if (!cancelled) { items.push(v); notify(); } },
    // After an abort nothing more is yielded, not even text already queued
    // (the worker may have sent a chunk before the abort reached it).
    cancel() { cancelled = true; items.length = 0; },
    end(err) { done = true; failure = err || null; notify(); },
    async *drain() {
      for (;;) {
        if (items.length) { yield items.shift(); continue; }
        if (failure) throw failure;
        if (done) return;
        await new Promise((r) => { wake = r; });
      }
    },
  };
}

function samplingOptions(o = {}) {
  return {
    maxTokens: o.max_tokens ?? o.maxTokens,
    temperature: o.temperature,
    topP: o.top_p ?? o.topP,
    topK: o.top_k ?? o.topK,
    minP: o.min_p ?? o.minP,
    repetitionPenalty: o.repetition_penalty ?? o.repetitionPenalty,
    frequencyPenalty: o.frequency_penalty ?? o.frequencyPenalty,
    presencePenalty: o.presence_penalty ?? o.presencePenalty,
    seed: o.seed,
    stop: o.stop === undefined ? undefined : [].concat(o.stop),
    ignoreEos: !!(o.ignore_eos ?? o.ignoreEos),
    contextShift: !!(o.context_shift ?? o.contextShift),
  };
}

let nextId = 0;

export class LLM {
  constructor(model, info) {
    this._model = model;
    this._busy = false;
    /** `{ name, backend, shaderF16, subgroups, ... }` of the WebGPU adapter. */
    this.adapter = info.adapter;
    /** Whether the weights came from the browser cache. */
    this.fromCache = info.fromCache;
    /** Why the model could not be cached (quota), or null. */
    this.cacheError = info.cacheError;
    /** Figures of the last generation: tokens, tok/s, finish reason. */
    this.lastStats = null;
    const self = this;
    this.chat = { completions: { create: (req) => self._chatCompletion(req) } };
  }

  _check() {
    if (!this._model) throw new KilnError('DISPOSED', 'this model was disposed');
    if (this._busy) throw new KilnError('BUSY', 'a generation is running on this model; await it or abort it first');
  }

  /** Runs one generation from ids, streaming text into a channel. */
  _start(ids, opts, signal) {
    this._check();
    this._busy = true;
    const ch = channel();
    const stop = new AbortController();
    const onAbort = () => { ch.cancel(); stop.abort(signal.reason); };
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    const result = this._model.run(ids, samplingOptions(opts), (s) => ch.push(s), stop.signal)
      .then((r) => {
        const tokens = r.tokens.length;
        this.lastStats = {
          promptTokens: r.promptTokens,
          prefilledTokens: r.prefilledTokens,
          completionTokens: tokens,
          prefillSeconds: r.prefillSecs,
          decodeSeconds: r.decodeSecs,
          prefillTokensPerSecond: r.prefillSecs > 0 ? r.prefilledTokens / r.prefillSecs : 0,
          decodeTokensPerSecond: r.decodeSecs > 0 && tokens > 1 ? (tokens - 1) / r.decodeSecs : 0,
          // Aborted by the caller: so even when the run ended before the
          // abort reached it (its last text was not yielded).
          finishReason: signal?.aborted ? 'abort' : r.finishReason,
          tokens: Array.from(r.tokens),
        };
        if (signal?.aborted) throw aborted(signal);
        ch.end();
        return r;
      })
      .catch((e) => { ch.end(e); throw e; })
      .finally(() => {
        this._busy = false;
        if (signal) signal.removeEventListener('abort', onAbort);
      });
    result.catch(() => {});
    return { ch, result, stop };
  }

  /**
   * Streams the continuation of a plain-text prompt:
   * `for await (const text of llm.generate('Once upon a time', { max_tokens: 64, signal }))`.
   * Breaking out of the loop stops generation.
   */
  async *generate(prompt, opts = {}) {
    const ids = await this._model.tokenize(prompt, true);
    yield* this._stream(ids, opts);
  }

  /** Like `generate`, from token ids. */
  async *generateIds(ids, opts = {}) {
    yield* this._stream(ids, opts);
  }

  async *_stream(ids, opts) {
    const run = this._start(ids, opts, opts.signal);
    try {
      yield* run.ch.drain();
      await run.result;
    } finally {
      run.stop.abort('consumer stopped');
      await run.result.catch(() => {});
    }
  }

  async _chatCompletion(req = {}) {
    if (!Array.isArray(req.messages) || req.messages.length === 0) {
      throw new KilnError('INVALID_INPUT', 'messages must be a non-empty array of { role, content }');
    }
    this._check();
    const ids = await this._model.chatPrompt(req.messages.map((m) => ({ role: String(m.role), content: String(m.content ?? '') })));
    const id = `chatcmpl-kiln-${Date.now().toString(36)}-${nextId++}`;
    const created = Math.floor(Date.now() / 1000);
    const model = req.model ?? 'kiln';
    const usage = (r) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.tokens.length, total_tokens: r.promptTokens + r.tokens.length });
    const finish = (r) => (r.finishReason === 'abort' ? 'abort' : r.finishReason);
    if (!req.stream) {
      const run = this._start(ids, req, req.signal);
      for await (const _ of run.ch.drain()) { /* collected in the result */ }
      const r = await run.result;
      return {
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: finish(r), logprobs: null }],
        usage: usage(r),
      };
    }
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const run = self._start(ids, req, req.signal);
        try {
          let first = true;
          for await (const text of run.ch.drain()) {
            yield {
              id, object: 'chat.completion.chunk', created, model,
              choices: [{ index: 0, delta: first ? { role: 'assistant', content: text } : { content: text }, finish_reason: null, logprobs: null }],
            };
            first = false;
          }
          const r = await run.result;
          yield {
            id, object: 'chat.completion.chunk', created, model,
            choices: [{ index: 0, delta: {}, finish_reason: finish(r), logprobs: null }],
            usage: usage(r),
          };
        } finally {
          run.stop.abort('consumer stopped');
          await run.result.catch(() => {});
        }
      },
    };
  }

  /** Token ids of `text` (with the model's BOS when `addSpecial`). */
  async tokenize(text, addSpecial = true) { this._check(); return this._model.tokenize(text, addSpecial); }

  async detokenize(ids, skipSpecial = true) { this._check(); return this._model.detokenize(ids, skipSpecial); }

  /**
   * Fine-tunes a LoRA adapter on this model's base, in the model's worker:
   * `const job = llm.trainLoRA(data, { rank, alpha, targets, steps, lr,
   * batchSize, seqLen, accum, warmup, schedule, evalEvery, valFraction,
   * onStep, signal })`; `await job.done` → `{ adapter: LoRAAdapter, steps,
   * aborted }`. `data`: JSONL chat examples (`{"messages": [...]}` per line,
   * assistant turns trained), plain text, a File/Blob, or an array of
   * `{ messages }`. An abort stops between steps and still resolves
   * (`aborted: true`) with the adapter trained so far.
   */
  trainLoRA(data, opts = {}) {
    this._check();
    this._busy = true;
    const { onStep, signal, init, ...rest } = opts;
    const history = [];
    const initFiles = init ? { config: init.config, weights: init.weights } : undefined;
    const done = this._model.train(data, { ...rest, init: initFiles }, (s) => { history.push(s); onStep?.(s); }, signal)
      .then((r) => ({ ...r, adapter: new LoRAAdapter(r.adapter.config, r.adapter.weights) }))
      .finally(() => { this._busy = false; });
    return { done, history };
  }

  /** Loads PEFT adapter files (see `LoRAAdapter.load`). */
  loadAdapter(source) { return LoRAAdapter.load(source); }

  /**
   * Applies adapters at inference, unmerged (the base stays as loaded):
   * `[{ adapter, scale }]`, scale 1 = as trained; `[]` restores the base.
   * Needs the model loaded with `loraRank` ≥ the adapters' total rank.
   * Clears the conversation.
   */
  async setAdapters(list) {
    this._check();
    if (!Array.isArray(list)) throw new KilnError('INVALID_INPUT', 'setAdapters takes an array of { adapter, scale }');
    return this._model.setAdapters(list);
  }

  /** Forgets the conversation (the KV cache). */
  async resetChat() { this._check(); return this._model.reset(); }

  /** Frees GPU memory (and the worker) now. */
  async dispose() {
    const m = this._model;
    this._model = null;
    if (m) await m.dispose();
  }
}
