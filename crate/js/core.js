// The engine in this realm (page or worker): the wasm module, the WebGPU
// device, streaming model loads and generation. Used directly on the main
// thread (`{ worker: false }`) and by worker.js.
import initWasm, { Engine, wasmMemoryBytes } from './kiln_wasm.js';
import { KilnError, toKilnError, aborted } from './errors.js';
import { openCached, cacheWriter, cacheLock } from './cache.js';

let wasmReady = null;
let engine = null;
// CPU engines by activation setting and threads ("q8/1", "f32/2", ...):
// promises of `{ eng, note }`.
const cpuEngines = new Map();
// The threaded build (kiln_wasm_mt.js), loaded on first use.
let mtReady = null;
let mtMemoryBytes = null;

export function initModule(wasmUrl) {
  if (!wasmReady) {
    wasmReady = initWasm(wasmUrl ? { module_or_path: wasmUrl } : undefined).catch((e) => {
      wasmReady = null;
      throw new KilnError('INTERNAL', `loading kiln's WebAssembly failed: ${e.message}`);
    });
  }
  return wasmReady;
}

function threadedModule(opts) {
  if (!mtReady) {
    mtReady = import('./kiln_wasm_mt.js').then(async (m) => {
      await m.default(opts.wasmThreadsUrl ? { module_or_path: opts.wasmThreadsUrl } : undefined);
      mtMemoryBytes = m.wasmMemoryBytes;
      return m;
    }).catch((e) => {
      mtReady = null;
      throw new KilnError('INTERNAL', `loading kiln's threaded WebAssembly failed: ${e.message}`);
    });
  }
  return mtReady;
}

/**
 * How many threads the CPU backend gets, and a note when fewer than asked:
 * threads need shared memory (a cross-origin-isolated page: COOP/COEP
 * headers) and a worker realm (the package's worker, the default; the
 * caller of a parallel job waits by spinning, which the page's main thread
 * must not do). `cpuThreads` (default: the core count, at most 8) asks.
 */
function cpuThreadPlan(opts) {
  const asked = opts.cpuThreads ?? Math.min(globalThis.navigator?.hardwareConcurrency || 1, 8);
  if (!Number.isInteger(asked) || asked < 1 || asked > 256) {
    throw new KilnError('INVALID_INPUT', `cpuThreads must be an integer from 1 to 256, not ${asked}`);
  }
  if (asked === 1) return { threads: 1, note: '' };
  let why = '';
  if (globalThis.crossOriginIsolated !== true || typeof SharedArrayBuffer !== 'function') {
    why = 'the page is not cross-origin isolated (COOP/COEP headers), so there is no shared memory';
  } else if (typeof WorkerGlobalScope === 'undefined' || typeof Worker !== 'function') {
    why = 'the model runs on the page\'s main thread (threads need the package\'s worker)';
  }
  return why ? { threads: 1, note: `; 1 thread: ${why}` } : { threads: asked, note: '' };
}

/** The CPU engine for an activation setting ("q8" | "f32") and thread count, made once. */
async function cpuEngine(opts) {
  const act = opts.cpuActivations ?? 'q8';
  const { threads, note } = cpuThreadPlan(opts);
  const key = `${act}/${threads}`;
  if (!cpuEngines.has(key)) {
    const made = (async () => {
      if (threads === 1) return { eng: Engine.createCpu(act, 1), note };
      let eng = null;
      try {
        const mt = await threadedModule(opts);
        eng = mt.Engine.createCpu(act, threads);
        const t0 = performance.now();
        while (!eng.threadsReady()) {
          if (performance.now() - t0 > 20000) throw new Error('the worker threads did not start within 20 s');
          await new Promise((r) => setTimeout(r, 2));
        }
        return { eng, note };
      } catch (e) {
        // The page can still run the model, on one thread.
        try { eng?.free(); } catch { /* gone */ }
        return { eng: Engine.createCpu(act, 1), note: `; 1 thread: ${toKilnError(e).message}` };
      }
    })();
    cpuEngines.set(key, made);
    made.catch(() => cpuEngines.delete(key));
  }
  return cpuEngines.get(key);
}

/** `{ eng, why }` for the CPU backend, picked for `why`. */
async function cpuPick(opts, why) {
  const { eng, note } = await cpuEngine(opts);
  return { eng, why: why + note };
}

/**
 * The engine for a load and why it was picked (`adapter.reason`): the WebGPU
 * device, or — for LLMs and diffusion (`cpuOk`) — the fast CPU backend (wasm
 * SIMD128) when `adapterPreference` is "cpu", the browser has no WebGPU, it
 * offers no adapter, or its only adapter is a software one (SwiftShader,
 * WARP: `isFallbackAdapter`), on which the CPU backend is many times faster;
 * `adapterPreference: "webgpu"` (or a power preference) keeps WebGPU there.
 * Training runs on either (the CPU backend with f32 activations).
 */
async function getEngine(opts, cpuOk = false, what = 'this') {
  await initModule(opts.wasmUrl);
  const pref = opts.adapterPreference;
  if (pref === 'cpu') {
    if (!cpuOk) {
      throw new KilnError('WEBGPU_UNAVAILABLE', `${what} needs WebGPU (adapterPreference "cpu" runs LLMs, diffusion and LoRA training)`);
    }
    return cpuPick(opts, 'adapterPreference "cpu"');
  }
  if (!globalThis.navigator?.gpu) {
    if (cpuOk) return cpuPick(opts, 'this browser has no WebGPU');
    throw new KilnError('WEBGPU_UNAVAILABLE', `${what === 'this' ? 'this' : `${what}: this`} browser has no WebGPU (navigator.gpu is missing); try a recent Chrome/Edge, or enable WebGPU (LLMs and diffusion run on the CPU without it)`);
  }
  if (!engine) {
    engine = Engine.create(pref === 'webgpu' ? undefined : pref).catch((e) => {
      engine = null;
      throw toKilnError(e);
    });
  }
  let eng;
  try {
    eng = await engine;
  } catch (e) {
    // navigator.gpu without an adapter (a blocklisted GPU, WebGPU disabled
    // by policy): LLMs and diffusion still run, on the CPU.
    if (cpuOk && e.code === 'WEBGPU_UNAVAILABLE') return cpuPick(opts, `no WebGPU adapter (${e.message})`);
    throw e;
  }
  const info = eng.info();
  if (cpuOk && !pref && info.software) {
    const name = info.name ? `, ${info.name},` : '';
    return cpuPick(opts, `the WebGPU adapter${name} is a software one (adapterPreference "webgpu" uses it)`);
  }
  return { eng, why: pref ? `adapterPreference "${pref}"` : `a ${info.software ? 'software ' : ''}WebGPU adapter` };
}

/** The adapter info a model reports: the engine's, with why it was picked. */
function adapterInfo(eng, why) {
  return { ...eng.info(), reason: why };
}

/** Forgets the device (after it was lost) so the next load opens a new one. */
function dropEngine() {
  engine = null;
}

const CHUNK = 1 << 20;

/** `{ size, stream, fromCache, cache }` for any supported source. */
async function openSource(source, opts) {
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return { size: bytes.length, stream: () => new Blob([bytes]).stream(), fromCache: false };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return { size: source.size, stream: () => source.stream(), blob: source, fromCache: false };
  }
  if (typeof source !== 'string' && !(source instanceof URL)) {
    throw new KilnError('INVALID_INPUT', 'source must be a URL, a File/Blob or an ArrayBuffer');
  }
  const url = String(source);
  if (opts.cache === false) return fetchSource(url, opts, null);
  // One loader per URL at a time (other tabs wait, then read its entry); the
  // writer releases the lock when the download is cached or abandoned.
  const release = await cacheLock(url);
  try {
    const hit = await openCached(url);
    if (hit) {
      release();
      return { ...hit, fromCache: true };
    }
    return await fetchSource(url, opts, release);
  } catch (e) {
    release();
    throw e;
  }
}

/** Fetches `url`; with `release` (the cache lock), the bytes are cached too. */
async function fetchSource(url, opts, release) {
  let resp;
  try {
    resp = await fetch(url, { signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    throw new KilnError('NETWORK_ERROR', `fetching ${url} failed: ${e.message}`);
  }
  if (!resp.ok) throw new KilnError('NETWORK_ERROR', `fetching ${url}: HTTP ${resp.status} ${resp.statusText}`);
  const size = Number(resp.headers.get('content-length'));
  if (!Number.isFinite(size) || size <= 0 || resp.headers.get('content-encoding')) {
    throw new KilnError('NETWORK_ERROR', `${url}: the server must send the file's Content-Length (uncompressed)`);
  }
  const cache = release ? await cacheWriter(url, size, release) : null;
  return { size, stream: () => resp.body, fromCache: false, cache };
}

/**
 * Loads a GGUF model: streams the bytes (network or cache) straight into GPU
 * buffers, tensor by tensor, reporting `{ phase, loaded, total, fraction,
 * fromCache }` to `onProgress`.
 */
export async function loadModel(source, opts = {}) {
  const folder = Array.isArray(source) || ((typeof source === 'string' || source instanceof URL) && String(source).endsWith('/'));
  return folder ? loadFolder(source, opts) : loadGguf(source, opts);
}

async function loadGguf(source, opts) {
  const { eng, why } = await getEngine(opts, true);
  if (opts.quantize != null && opts.quantize !== 'none') {
    throw new KilnError('UNSUPPORTED_MODEL', 'quantize-on-load applies to safetensors folders; GGUF weights load as stored');
  }
  const src = await openSource(source, opts);
  const progress = (phase, loaded) => opts.onProgress?.({ phase, loaded, total: src.size, fraction: src.size ? loaded / src.size : 1, fromCache: src.fromCache });
  let loader;
  try {
    if (opts.maxBindingBytes) eng.limitBinding(opts.maxBindingBytes);
    if (opts.cpuKernels !== undefined) eng.useCpuKernels(!!opts.cpuKernels);
    loader = eng.loadGguf(src.size, modelOptions(opts));
    const reader = src.stream().getReader();
    let loaded = 0;
    progress('download', 0);
    for (;;) {
      const { done, value } = await readPiece(src, reader, opts.signal);
      if (done) break;
      pushPieces(value, (piece) => loader.push(piece));
      loaded += value.length;
      progress(src.fromCache ? 'cache' : 'download', loaded);
    }
    const model = loader.finish();
    loader = null;
    if (src.cache) await src.cache.close();
    progress('ready', src.size);
    return new DirectModel(model, adapterInfo(eng, why), src, source, opts);
  } catch (e) {
    throw await loadFailed(e, loader, [src], opts);
  }
}

function modelOptions(opts) {
  return {
    maxCtx: opts.maxContext,
    prefillChunk: opts.prefillChunk,
    kvF16: !!opts.kvF16,
    quantize: opts.quantize ?? undefined,
    loraRank: opts.loraRank ?? 0,
  };
}

/** Text of training data: a string, a Blob/File, or an array of `{ messages }` examples. */
async function dataText(data) {
  if (typeof data === 'string') return { text: data, name: data.trimStart().startsWith('{') ? 'data.jsonl' : 'data.txt' };
  if (typeof Blob !== 'undefined' && data instanceof Blob) return { text: await data.text(), name: data.name ?? 'data.txt' };
  if (Array.isArray(data)) return { text: data.map((x) => JSON.stringify(x)).join('\n'), name: 'data.jsonl' };
  if (data == null) return { text: '', name: 'data.txt' };
  throw new KilnError('INVALID_INPUT', 'training data is JSONL/plain text, a File/Blob, or an array of { messages } examples');
}

/** Hands a network chunk to wasm in pieces of at most CHUNK bytes. */
function pushPieces(value, push) {
  for (let at = 0; at < value.length; at += CHUNK) push(value.subarray(at, at + CHUNK));
}

/** The error a failed load throws, after freeing the loader and dropping partial cache entries. */
async function loadFailed(e, loader, sources, opts) {
  if (loader) loader.free();
  for (const s of sources) if (s.cache) await s.cache.abort();
  // An aborted fetch rejects with the abort reason, whatever it is.
  const err = opts.signal?.aborted ? aborted(opts.signal) : toKilnError(e);
  if (err.code === 'DEVICE_LOST') dropEngine();
  return err;
}

/** Reads the next piece of an opened file, caching it on the way. */
async function readPiece(src, reader, signal) {
  if (signal?.aborted) {
    await reader.cancel().catch(() => {});
    throw aborted(signal);
  }
  let r;
  try {
    r = await reader.read();
  } catch (e) {
    if (signal?.aborted) throw aborted(signal);
    // The body stopped arriving (connection dropped, a storage read
    // failed): a network error, whatever the stream calls it.
    throw new KilnError('NETWORK_ERROR', `reading the model failed after it started arriving: ${e?.message ?? e}`);
  }
  if (!r.done && src.cache) await src.cache.write(r.value);
  return r;
}

async function readAll(src, signal) {
  return new Uint8Array(await (await readBlob(src, signal)).arrayBuffer());
}

/** All of `src` as a Blob: the File or cache entry itself when it is one, else the stream gathered (and cached). */
async function readBlob(src, signal) {
  if (src.blob) return src.blob;
  const reader = src.stream().getReader();
  const parts = [];
  try {
    for (;;) {
      const { done, value } = await readPiece(src, reader, signal);
      if (done) break;
      parts.push(value);
    }
  } catch (e) {
    if (src.cache) await src.cache.abort();
    throw e;
  }
  if (src.cache) await src.cache.close();
  return new Blob(parts);
}

/**
 * A weight file as the wasm loaders read it, by byte range: in a worker the
 * Blob itself (a picked File or the OPFS entry is never read whole; wasm
 * reads one tensor at a time with FileReaderSync), on the main thread its
 * bytes (FileReaderSync is worker-only) — held by the page, not copied into
 * wasm memory whole either way.
 */
async function readForRanges(src, signal) {
  const blob = await readBlob(src, signal);
  if (typeof FileReaderSync !== 'undefined') return blob;
  return new Uint8Array(await blob.arrayBuffer());
}

/**
 * Opens a safetensors folder's files (see `loadFolder`): the small JSON
 * files are read, the shards opened (pushed onto `opened`, in index order).
 */
async function openFolder(source, opts, opened) {
  const items = new Map();
  let base = null;
  if (Array.isArray(source)) {
    for (const it of source) {
      const name = it instanceof Blob ? it.name : String(it).split(/[?#]/)[0].split('/').pop();
      items.set(name, it);
    }
  } else {
    base = new URL(String(source), globalThis.location?.href).href;
  }
  const open = async (name, optional = false) => {
    const item = base ? new URL(name, base).href : items.get(name);
    if (!item) {
      if (optional) return null;
      throw new KilnError('INVALID_INPUT', `the model folder has no ${name}`);
    }
    try {
      return await openSource(item, opts);
    } catch (e) {
      if (optional && e.code === 'NETWORK_ERROR' && / 404 /.test(e.message)) return null;
      throw e;
    }
  };
  const config = await readAll(await open('config.json'), opts.signal);
  const tokenizer = await readAll(await open('tokenizer.json'), opts.signal);
  const tcSrc = await open('tokenizer_config.json', true);
  const tc = tcSrc ? await readAll(tcSrc, opts.signal) : undefined;
  const idxSrc = await open('model.safetensors.index.json', true);
  let names = ['model.safetensors'];
  if (idxSrc) {
    const idx = JSON.parse(new TextDecoder().decode(await readAll(idxSrc, opts.signal)));
    names = [...new Set(Object.values(idx.weight_map || {}))].sort();
    if (!names.length) throw new KilnError('CORRUPT_FILE', 'model.safetensors.index.json has no weight_map');
  }
  for (const n of names) opened.push(await open(n));
  return { config, tokenizer, tc, names };
}

/**
 * A Hugging Face safetensors folder: a base URL ending in "/", or a list of
 * URLs and/or Files (config.json, tokenizer.json, tokenizer_config.json,
 * model.safetensors or model.safetensors.index.json + its shards). Every
 * shard's header is read first (the model is compiled from them), then each
 * shard streams into GPU buffers, quantized on load if `quantize` says so.
 */
async function loadFolder(source, opts) {
  const { eng, why } = await getEngine(opts, true);
  const opened = [];
  let loader = null;
  try {
    const { config, tokenizer, tc, names } = await openFolder(source, opts, opened);
    const total = opened.reduce((a, s) => a + s.size, 0);
    const fromCache = opened.every((s) => s.fromCache);
    let loaded = 0;
    const progress = (phase) => opts.onProgress?.({ phase, loaded, total, fraction: total ? loaded / total : 1, fromCache });
    loader = eng.loadSafetensors(config, tc, tokenizer, names, opened.map((s) => s.size), modelOptions(opts));
    const readers = opened.map((s) => s.stream().getReader());
    const pump = async (i, untilHeader) => {
      while (!(untilHeader && loader.headerDone(i))) {
        const { done, value } = await readPiece(opened[i], readers[i], opts.signal);
        if (done) return;
        pushPieces(value, (piece) => loader.push(i, piece));
        loaded += value.length;
        progress(fromCache ? 'cache' : 'download');
      }
    };
    progress(fromCache ? 'cache' : 'download');
    for (let i = 0; i < opened.length; i++) await pump(i, true);
    for (let i = 0; i < opened.length; i++) await pump(i, false);
    const model = loader.finish();
    loader = null;
    for (const s of opened) if (s.cache) await s.cache.close();
    progress('ready');
    const cacheError = opened.map((s) => s.cache?.error).find(Boolean);
    return new DirectModel(model, adapterInfo(eng, why), { fromCache, cache: cacheError ? { error: cacheError } : null }, source, opts);
  } catch (e) {
    throw await loadFailed(e, loader, opened, opts);
  }
}

/** Whether `source` names a diffusers folder (base URL ending in "/", or Files / URLs of one). */
function isDiffusersFolder(source) {
  if (typeof source === 'string' || source instanceof URL) return String(source).split(/[?#]/)[0].endsWith('/');
  return Array.isArray(source);
}

// The files of a diffusers Stable-Diffusion folder Kiln reads, by relative
// path; weights under the first name present (or an index and its shards).
const SD_JSON = ['model_index.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer/tokenizer_config.json',
  'text_encoder/config.json', 'unet/config.json', 'vae/config.json', 'scheduler/scheduler_config.json'];
const SD_OPTIONAL = new Set(['model_index.json', 'tokenizer/tokenizer_config.json']);
const SD_WEIGHTS = {
  text_encoder: ['model.safetensors', 'model.fp16.safetensors'],
  unet: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors'],
  vae: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors'],
};

/**
 * A diffusers Stable-Diffusion folder: a base URL ending in "/" or a list of
 * Files (a directory pick: `webkitRelativePath` gives each file's path in
 * the folder) or URLs. The JSON and tokenizer files are read whole; each
 * weight file is handed over as it is (see readForRanges) and the pipeline
 * is built for the device one tensor at a time.
 */
async function loadSdFolder(source, opts) {
  // Diffusion is f32 throughout: the CPU engine says so in its name.
  const { eng, why } = await getEngine({ cpuActivations: 'f32', ...opts }, true);
  const items = new Map();
  let base = null;
  if (Array.isArray(source)) {
    for (const it of source) {
      const path = it instanceof Blob ? (it.webkitRelativePath || it.name) : String(it).split(/[?#]/)[0];
      // The path inside the folder: from the last component that is a known sub-folder (or the file name).
      const parts = path.split('/');
      const k = parts.findIndex((p, i) => i < parts.length - 1 && ['tokenizer', 'text_encoder', 'unet', 'vae', 'taesd', 'scheduler'].includes(p));
      items.set(k >= 0 ? parts.slice(k).join('/') : parts[parts.length - 1], it);
    }
  } else {
    base = new URL(String(source), globalThis.location?.href).href;
  }
  const files = {};
  let loaded = 0;
  const progress = (phase) => opts.onProgress?.({ phase, loaded, total: 0, fraction: phase === 'ready' ? 1 : 0, fromCache: false });
  const read = async (name, optional, weights = false) => {
    const item = base ? new URL(name, base).href : items.get(name);
    if (!item) {
      if (optional) return false;
      throw new KilnError('INVALID_INPUT', `the model folder has no ${name}`);
    }
    let src;
    try {
      src = await openSource(item, opts);
    } catch (e) {
      if (optional && e.code === 'NETWORK_ERROR' && / 404 /.test(e.message)) return false;
      if (e.code === 'NETWORK_ERROR' && / 404 /.test(e.message)) throw new KilnError('INVALID_INPUT', `the model folder has no ${name} (${e.message})`);
      throw e;
    }
    files[name] = weights ? await readForRanges(src, opts.signal) : await readAll(src, opts.signal);
    loaded += files[name].size ?? files[name].length;
    progress(src.fromCache ? 'cache' : 'download');
    return true;
  };
  try {
    progress('download');
    for (const f of SD_JSON) await read(f, SD_OPTIONAL.has(f));
    const decoder = opts.taesd ? 'taesd' : 'vae';
    if (opts.taesd || opts.previews) await read('taesd/config.json', false);
    // The decoder's weights only: with `taesd` the folder's VAE weights are not read.
    const parts = [['text_encoder', SD_WEIGHTS.text_encoder], ['unet', SD_WEIGHTS.unet], [decoder, SD_WEIGHTS.vae]];
    // img2img's encoder lives in vae/ (read too when TAESD decodes); step
    // previews decode with taesd/ (read too when the VAE decodes).
    if (opts.img2img && opts.taesd) parts.push(['vae', SD_WEIGHTS.vae]);
    if (opts.previews && !opts.taesd) parts.push(['taesd', SD_WEIGHTS.vae]);
    for (const [sub, names] of parts) {
      let found = false;
      for (const n of names) if (!found) found = await read(`${sub}/${n}`, true, true);
      if (!found) throw new KilnError('INVALID_INPUT', `the model folder has no ${sub}/${names[0]}`);
    }
    if (opts.signal?.aborted) throw aborted(opts.signal);
    progress('compile');
    if (opts.cpuKernels !== undefined) eng.useCpuKernels(!!opts.cpuKernels);
    const model = eng.loadStableDiffusion(files, {
      width: opts.width, height: opts.height, guidance: opts.guidance, weights: opts.weights, taesd: !!opts.taesd,
      img2img: !!opts.img2img, previews: !!opts.previews, vaeTiling: !!opts.vaeTiling,
    });
    progress('ready');
    return new DirectSd(model, adapterInfo(eng, why), !!opts.previews);
  } catch (e) {
    throw await loadFailed(e, null, [], opts);
  }
}

/**
 * A wasm diffusion model's `generate(req, (done, total) => keepGoing)`:
 * progress as `{ done, total, fraction }`, `signal` checked between network
 * calls / steps, errors as KilnErrors.
 */
async function generateWith(model, req, onProgress, signal, previews = false) {
  if (signal?.aborted) throw aborted(signal);
  // A step's preview (RGBA bytes) rides on that step's progress report.
  let preview = null;
  const onStep = (done, total) => {
    if (signal?.aborted) return false;
    const p = { done, total, fraction: total ? done / total : 1 };
    if (preview) p.preview = preview;
    preview = null;
    onProgress?.(p);
    return !signal?.aborted;
  };
  try {
    if (previews) {
      return await model.generate(req, onStep, (done, data, width, height) => { preview = { data, width, height }; });
    }
    return await model.generate(req, onStep);
  } catch (e) {
    const err = signal?.aborted ? aborted(signal) : toKilnError(e);
    if (err.code === 'DEVICE_LOST') dropEngine();
    throw err;
  }
}

/** A loaded Stable-Diffusion pipeline in this realm. */
export class DirectSd {
  constructor(model, adapter, previews = false) {
    this.model = model;
    this.adapter = adapter;
    this.kind = 'sd';
    this.previews = previews;
    this.fromCache = false;
    this.cacheError = null;
    const [w, h] = model.size();
    this.width = w;
    this.height = h;
  }

  /**
   * Text to image; `onProgress({ done, total, fraction, preview })` after
   * every step (`preview`: `{ data, width, height }` RGBA when the model was
   * loaded with `previews` and the request asks for them).
   */
  generate(req, onProgress, signal) {
    return generateWith(this.model, req, onProgress, signal, !!req.previews);
  }

  async encodePrompt(prompt, negative) {
    try { await this.model.encodePrompt(prompt, negative); } catch (e) { throw toKilnError(e); }
  }

  freeTextEncoder() {
    try { this.model.freeTextEncoder(); } catch (e) { throw toKilnError(e); }
  }

  deviceBytes() {
    try { return this.model.deviceBytes(); } catch (e) { throw toKilnError(e); }
  }

  dispose() {
    try { this.model.dispose(); this.model.free(); } catch { /* already gone */ }
  }
}

/**
 * Loads a terrain diffusion UNet (ONNX): the whole file is read (network,
 * cache, Blob or bytes; the wasm side parses it in one piece), then compiled
 * for the device. Progress: `{ phase: 'download' | 'cache' | 'compile' |
 * 'ready', loaded, total, fraction, fromCache }`.
 */
export async function loadDiffusionModel(source, opts = {}) {
  if (isDiffusersFolder(source)) return loadSdFolder(source, opts);
  const { eng, why } = await getEngine({ cpuActivations: 'f32', ...opts }, true);
  const src = await openSource(source, opts);
  const progress = (phase, loaded) => opts.onProgress?.({ phase, loaded, total: src.size, fraction: src.size ? loaded / src.size : 1, fromCache: src.fromCache });
  try {
    if (opts.cpuKernels !== undefined) eng.useCpuKernels(!!opts.cpuKernels);
    const bytes = new Uint8Array(src.size);
    const reader = src.stream().getReader();
    let loaded = 0;
    progress(src.fromCache ? 'cache' : 'download', 0);
    for (;;) {
      const { done, value } = await readPiece(src, reader, opts.signal);
      if (done) break;
      if (loaded + value.length > bytes.length) throw new KilnError('CORRUPT_FILE', `the file is longer than its announced ${src.size} bytes`);
      bytes.set(value, loaded);
      loaded += value.length;
      progress(src.fromCache ? 'cache' : 'download', loaded);
    }
    if (loaded !== src.size) throw new KilnError('CORRUPT_FILE', `the file ended after ${loaded} of ${src.size} bytes`);
    if (opts.signal?.aborted) throw aborted(opts.signal);
    progress('compile', loaded);
    const model = eng.loadTerrain(bytes, { batch: opts.batch, weights: opts.weights });
    if (src.cache) await src.cache.close();
    progress('ready', src.size);
    return new DirectDiffusion(model, adapterInfo(eng, why), src);
  } catch (e) {
    throw await loadFailed(e, null, [src], opts);
  }
}

/** A loaded diffusion model in this realm; every method may throw a KilnError. */
export class DirectDiffusion {
  constructor(model, adapter, src) {
    this.model = model;
    this.adapter = adapter;
    this.fromCache = src.fromCache;
    this.cacheError = src.cache?.error ? { code: src.cache.error.code, message: src.cache.error.message } : null;
    this.batch = model.batch();
  }

  /**
   * Generates maps; `onProgress({ done, total, fraction })` after every
   * network call. The wasm side checks for an abort between network calls.
   */
  generate(req, onProgress, signal) {
    return generateWith(this.model, req, onProgress, signal);
  }

  /** One raw network call: noisy [B·128·128], sigma [B], label [B] = (difficulty − 1)/99. */
  async denoise(noisy, sigma, label) {
    try {
      return await this.model.denoise(Float32Array.from(noisy), Float32Array.from(sigma), Float32Array.from(label));
    } catch (e) {
      const err = toKilnError(e);
      if (err.code === 'DEVICE_LOST') dropEngine();
      throw err;
    }
  }

  dispose() {
    try { this.model.dispose(); this.model.free(); } catch { /* already gone */ }
  }
}

/** A loaded model in this realm; every method may throw a KilnError. */
export class DirectModel {
  constructor(model, adapter, src, source, opts = {}) {
    this.model = model;
    this.source = source;
    this.loadOpts = opts;
    this.adapter = adapter;
    this.fromCache = src.fromCache;
    this.cacheError = src.cache?.error ? { code: src.cache.error.code, message: src.cache.error.message } : null;
  }

  wrap(f) {
    try {
      return f();
    } catch (e) {
      throw toKilnError(e);
    }
  }

  tokenize(text, addSpecial = true) { return this.wrap(() => Array.from(this.model.tokenize(text, addSpecial))); }
  detokenize(ids, skipSpecial = true) { return this.wrap(() => this.model.detokenize(Uint32Array.from(ids), skipSpecial)); }
  chatPrompt(messages) { return this.wrap(() => Array.from(this.model.chatPrompt(messages))); }
  reset() { return this.wrap(() => this.model.reset()); }
  maxContext() { return this.wrap(() => this.model.maxContext()); }

  /**
   * Generates from token ids; `onText(chunk)` streams text. Resolves to the
   * result (`finishReason` is "abort" when `signal` fired).
   */
  async run(ids, opts, onText, signal) {
    if (signal?.aborted) throw aborted(signal);
    let p;
    try {
      p = this.model.generate(Uint32Array.from(ids), opts, (s) => {
        if (signal?.aborted) return false;
        onText(s);
        return !signal?.aborted;
      });
      return await p;
    } catch (e) {
      const err = toKilnError(e);
      if (err.code === 'DEVICE_LOST') dropEngine();
      throw err;
    }
  }

  /**
   * LoRA fine-tuning of this model's base (a GGUF source, read again —
   * from OPFS when cached) on `data`. `onStep({ step, loss, valLoss,
   * gradNorm, lr, tokens, done })` after every optimizer step; an abort
   * stops between steps and still resolves with the adapter trained so far
   * (`aborted: true`). Resolves to `{ adapter: { config, weights }, steps,
   * aborted, info }`.
   */
  async train(data, opts = {}, onStep, signal) {
    if (signal?.aborted) throw aborted(signal);
    const folder = Array.isArray(this.source) || String(this.source).endsWith('/');
    // The model's own kind of engine; on the CPU backend with f32
    // activations (8-bit products would bend the gradients).
    const { eng } = await getEngine({ ...this.loadOpts, cpuActivations: 'f32' }, true, 'LoRA training');
    const { text, name } = await dataText(data);
    const { init, ...rest } = opts;
    const initFiles = init ? { config: init.config, weights: init.weights } : undefined;
    let job;
    if (folder) {
      // The folder's files again (from the cache after the first load).
      const opened = [];
      const shards = [];
      let f;
      try {
        f = await openFolder(this.source, { ...this.loadOpts, signal }, opened);
        for (const o of opened) shards.push(await readAll(o, signal));
      } catch (e) {
        // Shards not read yet give their cache entries (and locks) up.
        for (const o of opened.slice(shards.length)) if (o.cache) await o.cache.abort();
        throw e;
      }
      try {
        job = eng.loadTrainerFolder(f.config, f.tc ?? null, f.tokenizer, f.names, shards, text, name, rest, initFiles);
      } catch (e) {
        throw toKilnError(e);
      }
    } else {
      const src = await openSource(this.source, { ...this.loadOpts, signal, cache: this.loadOpts.cache });
      const bytes = await readAll(src, signal);
      try {
        job = eng.loadTrainer(bytes, text, name, rest, initFiles);
      } catch (e) {
        throw toKilnError(e);
      }
    }
    const steps = [];
    try {
      const info = job.info();
      let stopped = false;
      for (;;) {
        if (signal?.aborted) { stopped = true; break; }
        const r = await job.step();
        steps.push(r);
        onStep?.(r);
        if (r.done) break;
      }
      const adapter = await job.adapter();
      return { adapter, steps, aborted: stopped, info };
    } catch (e) {
      const err = toKilnError(e);
      if (err.code === 'DEVICE_LOST') dropEngine();
      throw err;
    } finally {
      try { job.dispose(); job.free(); } catch { /* gone */ }
    }
  }

  /** Applies adapters `[{ adapter: { config, weights }, scale }]` ([] = the base). */
  setAdapters(list) {
    return this.wrap(() => this.model.setAdapters(list.map((x) => ({ config: x.adapter.config, weights: x.adapter.weights, scale: x.scale ?? 1 }))));
  }

  /** Size of the wasm memory (weights stream through it, never all at once). */
  wasmMemoryBytes() { return (this.adapter.threads > 1 ? mtMemoryBytes : wasmMemoryBytes)(); }

  /** Test hooks: weights split over several buffers ({name: chunks}), and the full logits after `ids`. */
  weightChunks() { return this.wrap(() => this.model.weightChunks()); }
  async logitsOf(ids) {
    try {
      return await this.model.logits(Uint32Array.from(ids));
    } catch (e) {
      throw toKilnError(e);
    }
  }

  /** Test hook: destroys the device to exercise the device-lost path. */
  async loseDevice() {
    (await engine)?.loseDevice();
  }

  dispose() {
    try { this.model.dispose(); this.model.free(); } catch { /* already gone */ }
  }
}
