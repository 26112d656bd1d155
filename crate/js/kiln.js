// kiln-webgpu: quantized LLMs and terrain diffusion on WebGPU, in a Web Worker by default.
//
//   import init, { Kiln } from 'kiln-webgpu';
//   const llm = await Kiln.loadLLM('/models/SmolLM2-135M-Instruct.Q4_1.gguf', { onProgress });
//   for await (const text of llm.generate('The sky is', { max_tokens: 32 })) out.textContent += text;
//
//   const dm = await Kiln.loadDiffusion('/models/terrain_consistency_unet_difficulty100.onnx');
//   const { image, heights } = await dm.generate({ difficulty: 40, width: 256, height: 256, seed: 1 });
import { KilnError, toKilnError, aborted } from './errors.js';
import { LLM } from './llm.js';
import { DiffusionModel } from './diffusion.js';
import { hasModelInCache, deleteModelInCache } from './cache.js';
import { LoRAAdapter } from './adapter.js';

export { KilnError, LLM, DiffusionModel, LoRAAdapter, hasModelInCache, deleteModelInCache };

/**
 * Optional: loads the WebAssembly on this thread ahead of time (needed only
 * for `{ worker: false }`; loadLLM does it on demand).
 */
export default async function init(wasmUrl) {
  const core = await import('./core.js');
  await core.initModule(wasmUrl);
}

/** Main-thread proxy to a model living in its own worker. */
class WorkerModel {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    this.nextId = 1;
    this.dead = null;
    worker.onmessage = (ev) => {
      const m = ev.data;
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.progress) p.onProgress?.(m.progress);
      else if (m.text !== undefined) p.onText?.(m.text);
      else {
        this.pending.delete(m.id);
        if (m.error) p.reject(new KilnError(m.error.code, m.error.message));
        else p.resolve(m.ok ? m.value : undefined);
      }
    };
    worker.onerror = (ev) => this._die(new KilnError('INTERNAL', `the Kiln worker failed: ${ev.message || 'unknown error'}`));
  }

  _die(err) {
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.worker.terminate();
  }

  _send(msg, hooks = {}, transfer = []) {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...hooks });
      this.worker.postMessage({ id, ...msg }, transfer);
      const signal = hooks.signal;
      if (signal) {
        const onAbort = () => this.worker.postMessage({ op: 'abort', target: id, reason: String(signal.reason ?? 'aborted') });
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  load(source, opts, kind = 'llm') {
    const { onProgress, signal, ...rest } = opts;
    return this._send({ op: 'load', kind, source, opts: rest }, { onProgress, signal });
  }

  run(ids, opts, onText, signal) { return this._send({ op: 'run', ids, opts }, { onText, signal }); }
  generate(req, onProgress, signal) { return this._send({ op: 'generate', req }, { onProgress, signal }); }
  train(data, opts, onStep, signal) { return this._send({ op: 'train', data, opts }, { onProgress: onStep, signal }); }
  setAdapters(list) {
    return this._call('setAdapters', list.map((x) => ({ adapter: { config: x.adapter.config, weights: x.adapter.weights }, scale: x.scale ?? 1 })));
  }
  denoise(noisy, sigma, label) { return this._call('denoise', noisy, sigma, label); }
  encodePrompt(prompt, negative) { return this._call('encodePrompt', prompt, negative); }
  freeTextEncoder() { return this._call('freeTextEncoder'); }
  deviceBytes() { return this._call('deviceBytes'); }
  _call(method, ...args) { return this._send({ op: 'call', method, args }); }
  tokenize(text, addSpecial) { return this._call('tokenize', text, addSpecial); }
  detokenize(ids, skipSpecial) { return this._call('detokenize', ids, skipSpecial); }
  chatPrompt(messages) { return this._call('chatPrompt', messages); }
  reset() { return this._call('reset'); }
  loseDevice() { return this._call('loseDevice'); }
  wasmMemoryBytes() { return this._call('wasmMemoryBytes'); }
  weightChunks() { return this._call('weightChunks'); }
  logitsOf(ids) { return this._call('logitsOf', ids); }
  async dispose() {
    await this._call('dispose').catch(() => {});
    this.worker.terminate();
    this.dead = new KilnError('DISPOSED', 'this model was disposed');
  }
}

export class Kiln {
  /**
   * Loads a model, streaming it into GPU memory: a GGUF file (URL, File/Blob
   * or ArrayBuffer) or a Hugging Face safetensors folder (a base URL ending
   * in "/", or a list of URLs/Files: config.json, tokenizer.json,
   * model.safetensors or the index and its shards). Options: `onProgress({phase, loaded, total, fraction,
   * fromCache})`, `signal` (AbortSignal), `worker` (default true),
   * `cache` (default true: OPFS), `adapterPreference` ("webgpu" |
   * "high-performance" | "low-power" | "cpu": the fast CPU backend, also
   * used by default when the browser has no WebGPU or only a software
   * adapter such as SwiftShader; "webgpu" keeps WebGPU there), `cpuActivations` ("q8" default | "f32"), `maxContext`, `kvF16`, `quantize` (safetensors only:
   * "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q4_k" | "q6_k" | "f16" …; GGUF weights load as
   * stored), `loraRank` (room for LoRA adapters at inference: their total
   * rank; 0 = none).
   */
  static async loadLLM(source, opts = {}) {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    const useWorker = opts.worker !== false && typeof Worker !== 'undefined';
    if (!useWorker) {
      const core = await import('./core.js');
      const m = await core.loadModel(source, opts);
      return new LLM(m, m);
    }
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'kiln' });
    const proxy = new WorkerModel(worker);
    try {
      const info = await proxy.load(source, opts);
      return new LLM(proxy, info);
    } catch (e) {
      proxy._die(toKilnError(e));
      throw toKilnError(e);
    }
  }

  /**
   * Loads a diffusion model: a terrain UNet (the ONNX export of the one-step
   * consistency model; URL, File/Blob or bytes), or a diffusers
   * Stable-Diffusion folder (a base URL ending in "/", or its Files — a
   * directory pick — or URLs). Options: `onProgress({phase, loaded, total,
   * fraction, fromCache})` (phases download/cache, compile, ready), `signal`,
   * `worker` (default true), `cache` (default true: OPFS),
   * `adapterPreference`, `weights` ("f32" default, "f16", "q8_0"); terrain:
   * `batch` (128² tiles per network call, default 1); Stable Diffusion:
   * `width`, `height` (default: the model's), `guidance` (false: compile for
   * guidance ≤ 1 only, as SD-Turbo runs), `taesd` (decode with the folder's
   * `taesd/`), `img2img` (also load the VAE encoder for `initImage`),
   * `previews` (also load the folder's `taesd/`: each step's `onStep` report
   * carries `preview`, an ImageData of the image that step predicts),
   * `vaeTiling` (decode in tiles of the VAE's `sample_size`, as diffusers'
   * `enable_vae_tiling()`: less GPU memory for large images).
   */
  static async loadDiffusion(source, opts = {}) {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    const useWorker = opts.worker !== false && typeof Worker !== 'undefined';
    if (!useWorker) {
      const core = await import('./core.js');
      const m = await core.loadDiffusionModel(source, opts);
      return new DiffusionModel(m, m);
    }
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'kiln-diffusion' });
    const proxy = new WorkerModel(worker);
    try {
      const info = await proxy.load(source, opts, 'diffusion');
      return new DiffusionModel(proxy, info);
    } catch (e) {
      proxy._die(toKilnError(e));
      throw toKilnError(e);
    }
  }

  static hasModelInCache(url) { return hasModelInCache(url); }
  static deleteModelInCache(url) { return deleteModelInCache(url); }
}
