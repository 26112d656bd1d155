// The public diffusion model object: terrain heightmaps from a one-step
// diffusion UNet (ONNX), or text to image from a diffusers Stable-Diffusion
// folder. Like LLM, it drives a DirectDiffusion / DirectSd (this thread) or
// the worker proxy (kiln.js) through the same small interface:
// generate(req, onProgress, signal), denoise(noisy, sigma, label), dispose().
import { KilnError, aborted } from './errors.js';

const SIDE = 4096;
const N = 128;

function int(name, v, lo, hi, dflt) {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new KilnError('INVALID_INPUT', `${name} must be an integer in ${lo}..${hi} (got ${v})`);
  }
  return v;
}

/** The request as the wasm side reads it, checked here so mistakes fail before any work. */
function request(o) {
  const r = {
    difficulty: int('difficulty', o.difficulty, 1, 100, 50),
    width: int('width', o.width, 1, SIDE, N),
    height: int('height', o.height, 1, SIDE, N),
    seed: int('seed', o.seed, 0, Number.MAX_SAFE_INTEGER, 0),
    count: int('count', o.count, 1, 1024, 1),
  };
  if (o.from != null) {
    const from = o.from instanceof Float32Array ? o.from : ArrayBuffer.isView(o.from) || Array.isArray(o.from) ? Float32Array.from(o.from) : null;
    const fw = int('fromWidth', o.fromWidth, 1, SIDE, undefined);
    const fh = int('fromHeight', o.fromHeight, 1, SIDE, undefined);
    if (!from || fw === undefined || fh === undefined || from.length !== fw * fh) {
      throw new KilnError('INVALID_INPUT', `from must be a Float32Array of fromWidth × fromHeight heights in metres (got ${from ? from.length : typeof o.from} values for ${fw} × ${fh})`);
    }
    if (o.strength != null && !(typeof o.strength === 'number' && o.strength >= 0 && o.strength <= 1)) {
      throw new KilnError('INVALID_INPUT', `strength must be a number in [0, 1] (got ${o.strength})`);
    }
    Object.assign(r, { from, fromWidth: fw, fromHeight: fh, strength: o.strength ?? 0.5 });
  }
  return r;
}

const SCHEDULERS = ['euler', 'euler-a', 'ddim', 'dpm++2m', 'dpm++2m-karras', 'lcm'];

/** A text-to-image request, checked before any work. */
function sdRequest(o) {
  if (typeof o.prompt !== 'string') throw new KilnError('INVALID_INPUT', `prompt must be a string (got ${typeof o.prompt})`);
  if (o.negativePrompt != null && typeof o.negativePrompt !== 'string') throw new KilnError('INVALID_INPUT', 'negativePrompt must be a string');
  const scheduler = o.scheduler ?? 'euler';
  if (!SCHEDULERS.includes(scheduler)) throw new KilnError('INVALID_INPUT', `scheduler must be one of ${SCHEDULERS.join(', ')} (got ${scheduler})`);
  if (o.guidance != null && !(typeof o.guidance === 'number' && Number.isFinite(o.guidance) && o.guidance >= 0 && o.guidance <= 50)) {
    throw new KilnError('INVALID_INPUT', `guidance must be a number in [0, 50] (got ${o.guidance})`);
  }
  const r = {
    prompt: o.prompt,
    negativePrompt: o.negativePrompt ?? '',
    steps: int('steps', o.steps, 1, 1000, 20),
    scheduler,
    guidance: o.guidance, // default: 7.5, or 0 for a pipeline loaded with guidance: false
    seed: int('seed', o.seed, 0, Number.MAX_SAFE_INTEGER, 0),
  };
  if (o.initLatents != null) r.initLatents = Float32Array.from(o.initLatents);
  if (o.initImage != null) {
    // ImageData, or anything with RGBA `data` (or the bytes themselves).
    const data = o.initImage.data ?? o.initImage;
    if (!ArrayBuffer.isView(data) || data.BYTES_PER_ELEMENT !== 1) {
      throw new KilnError('INVALID_INPUT', 'initImage must be an ImageData or RGBA bytes (Uint8ClampedArray / Uint8Array)');
    }
    r.initImage = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    const s = o.strength ?? 0.8;
    if (!(typeof s === 'number' && s > 0 && s <= 1)) throw new KilnError('INVALID_INPUT', `strength must be a number in (0, 1] (got ${s})`);
    r.strength = s;
  }
  return r;
}

/** One ImageData per map (the same buffer when there is one map). */
function images(rgba, width, height, count) {
  const make = (data) => (typeof ImageData !== 'undefined' ? new ImageData(data, width, height) : { data, width, height, colorSpace: 'srgb' });
  if (count === 1) return [make(rgba)];
  const n = width * height * 4;
  return Array.from({ length: count }, (_, i) => make(rgba.slice(i * n, (i + 1) * n)));
}

export class DiffusionModel {
  constructor(model, info) {
    this._model = model;
    this._busy = false;
    /** `{ name, backend, shaderF16, ... }` of the WebGPU adapter. */
    this.adapter = info.adapter;
    /** Whether the weights came from the browser cache. */
    this.fromCache = info.fromCache;
    /** Why the model could not be cached (quota), or null. */
    this.cacheError = info.cacheError;
    /** 128² tiles per network call (the `batch` load option; terrain). */
    this.batch = info.batch;
    /** 'terrain' (ONNX UNet) or 'sd' (a diffusers Stable-Diffusion folder). */
    this.kind = info.kind ?? 'terrain';
    /** Whether steps report TAESD previews (Stable Diffusion, `previews` load option). */
    this.previews = !!info.previews;
    /** The image size a Stable-Diffusion pipeline was loaded for. */
    this.width = info.width;
    this.height = info.height;
    /** Figures of the last generation. */
    this.lastStats = null;
  }

  _check() {
    if (!this._model) throw new KilnError('DISPOSED', 'this model was disposed');
    if (this._busy) throw new KilnError('BUSY', 'this model is generating; await it or abort it first');
  }

  /**
   * Generates `count` heightmaps of `width` × `height` (maps up to 128 × 128
   * are one network call, larger ones blended 128² tiles). Resolves to
   * `{ width, height, count, heights, image, images }`: `heights` is a
   * Float32Array of count·height·width metres (map i at i·height·width),
   * `images` one ImageData (RGBA shaded relief) per map and `image` the
   * first of them. `onProgress({ done, total, fraction })` follows the
   * network calls; `signal` aborts (ABORTED) after the call in flight.
   */
  async generate(opts = {}) {
    this._check();
    const signal = opts.signal;
    if (signal?.aborted) throw aborted(signal);
    if (this.kind === 'sd') return this._textToImage(opts, signal);
    const req = request(opts);
    this._busy = true;
    const t0 = performance.now();
    try {
      const r = await this._model.generate(req, opts.onProgress, signal);
      this.lastStats = { seconds: (performance.now() - t0) / 1000, maps: r.count, width: r.width, height: r.height };
      const imgs = images(r.image, r.width, r.height, r.count);
      return { width: r.width, height: r.height, count: r.count, heights: r.heights, image: imgs[0], images: imgs };
    } catch (e) {
      if (signal?.aborted) throw aborted(signal);
      throw e;
    } finally {
      this._busy = false;
    }
  }

  /**
   * Stable Diffusion: `{ prompt, negativePrompt, steps, scheduler, guidance,
   * seed, initImage, strength, onStep, signal }` → `{ width, height, image:
   * ImageData }`. img2img (`initImage`: an ImageData of the model's size;
   * load with `img2img: true`) runs the last ⌊steps·strength⌋ steps.
   * `onStep({ done, total, fraction, preview })` after each denoising step
   * (`preview`: an ImageData of the image the step predicts, decoded by
   * TAESD, when loaded with `previews`; `previews: false` skips them);
   * `signal` aborts (ABORTED) after the step in flight.
   */
  async _textToImage(opts, signal) {
    const req = sdRequest(opts);
    if (this.previews && opts.previews !== false) req.previews = true;
    const cb = opts.onStep ?? opts.onProgress;
    // Previews arrive as RGBA bytes (through the worker) and leave as ImageData.
    const onStep = cb && ((p) => cb(p.preview ? { ...p, preview: new ImageData(new Uint8ClampedArray(p.preview.data), p.preview.width, p.preview.height) } : p));
    this._busy = true;
    const t0 = performance.now();
    try {
      const r = await this._model.generate(req, onStep, signal);
      this.lastStats = { seconds: (performance.now() - t0) / 1000, steps: req.steps, width: r.width, height: r.height };
      return { width: r.width, height: r.height, image: images(r.image, r.width, r.height, 1)[0] };
    } catch (e) {
      if (signal?.aborted) throw aborted(signal);
      throw e;
    } finally {
      this._busy = false;
    }
  }

  /**
   * One raw network call (parity tests): `noisy` NCHW [batch·1·128·128],
   * per-sample `sigma` and `label` = (difficulty − 1)/99. Resolves to the
   * denoised Float32Array.
   */
  async denoise(noisy, sigma, label) {
    this._check();
    if (noisy.length !== this.batch * N * N || sigma.length !== this.batch || label.length !== this.batch) {
      throw new KilnError('INVALID_INPUT', `denoise takes ${this.batch}·128·128 noisy values and ${this.batch} sigmas and labels (the load's batch)`);
    }
    this._busy = true;
    try {
      return await this._model.denoise(noisy, sigma, label);
    } finally {
      this._busy = false;
    }
  }

  _checkSd(what) {
    this._check();
    if (this.kind !== 'sd') throw new KilnError('INVALID_INPUT', `${what} is for Stable-Diffusion pipelines`);
  }

  /**
   * Stable Diffusion: encodes `prompt` (and `negativePrompt`) now, so it
   * still generates after `freeTextEncoder()`.
   */
  async encodePrompt(prompt, negativePrompt = '') {
    this._checkSd('encodePrompt');
    if (typeof prompt !== 'string' || typeof negativePrompt !== 'string') throw new KilnError('INVALID_INPUT', 'encodePrompt takes strings');
    this._busy = true;
    try {
      await this._model.encodePrompt(prompt, negativePrompt);
    } finally {
      this._busy = false;
    }
  }

  /**
   * Stable Diffusion: frees the text encoder's GPU memory (≈ 1.4 GB for SD
   * 2.x in f32). The last 8 prompts generated or encoded still generate;
   * any other prompt rejects with INVALID_INPUT until the model is loaded
   * again.
   */
  async freeTextEncoder() {
    this._checkSd('freeTextEncoder');
    await this._model.freeTextEncoder();
  }

  /** Stable Diffusion: the GPU bytes the pipeline holds now. */
  async deviceBytes() {
    this._checkSd('deviceBytes');
    return this._model.deviceBytes();
  }

  /** Frees GPU memory (and the worker) now. */
  async dispose() {
    const m = this._model;
    this._model = null;
    if (m) await m.dispose();
  }
}
