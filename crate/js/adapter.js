// LoRA adapters in PEFT's format: `adapter_config.json` (text) and
// `adapter_model.safetensors` (bytes) — the files Hugging Face `peft` saves
// and loads unchanged. Saved to / loaded from OPFS, Files, URLs or Blobs.
import { KilnError } from './errors.js';

const DIR = 'kiln-adapters';

async function adapterDir(create) {
  if (!globalThis.navigator?.storage?.getDirectory) {
    throw new KilnError('UNSUPPORTED', 'this browser has no Origin Private File System (navigator.storage.getDirectory)');
  }
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create });
}

function checkName(name) {
  if (typeof name !== 'string' || !/^[\w.-]{1,100}$/.test(name) || name.startsWith('.')) {
    throw new KilnError('INVALID_INPUT', 'an adapter name is 1–100 letters, digits, "_", "-" or "."');
  }
}

/** Writes `data` to `file` in `dir` via a temporary file and a rename-by-copy marker. */
async function writeFile(dir, file, data) {
  const h = await dir.getFileHandle(file, { create: true });
  const w = await h.createWritable();
  await w.write(data);
  await w.close();
}

export class LoRAAdapter {
  /** `config`: the adapter_config.json text; `weights`: adapter_model.safetensors bytes. */
  constructor(config, weights) {
    if (typeof config !== 'string') throw new KilnError('BAD_ADAPTER', 'config must be the adapter_config.json text');
    if (!(weights instanceof Uint8Array)) throw new KilnError('BAD_ADAPTER', 'weights must be the adapter_model.safetensors bytes (Uint8Array)');
    let cfg;
    try {
      cfg = JSON.parse(config);
    } catch (e) {
      throw new KilnError('BAD_ADAPTER', `adapter_config.json is not JSON: ${e.message}`);
    }
    this.config = config;
    this.weights = weights;
    /** LoRA rank, alpha, target modules and rsLoRA flag from the config. */
    this.rank = cfg.r;
    this.alpha = cfg.lora_alpha;
    this.targets = cfg.target_modules;
    this.rslora = !!cfg.use_rslora;
  }

  /** The two PEFT files as Blobs (for a download link or an upload). */
  files() {
    return {
      'adapter_config.json': new Blob([this.config], { type: 'application/json' }),
      'adapter_model.safetensors': new Blob([this.weights], { type: 'application/octet-stream' }),
    };
  }

  /**
   * Saves to OPFS under `name` (a folder with the two PEFT files). The
   * weights are written first and the config last, and `fromOPFS` needs
   * both, so an interrupted save never loads as a broken adapter.
   */
  async saveToOPFS(name) {
    checkName(name);
    const root = await adapterDir(true);
    const dir = await root.getDirectoryHandle(name, { create: true });
    try { await dir.removeEntry('adapter_config.json'); } catch { /* none yet */ }
    await writeFile(dir, 'adapter_model.safetensors', this.weights);
    await writeFile(dir, 'adapter_config.json', this.config);
  }

  /** Loads an adapter saved with `saveToOPFS`. */
  static async fromOPFS(name) {
    checkName(name);
    try {
      const dir = await (await adapterDir(false)).getDirectoryHandle(name);
      const config = await (await (await dir.getFileHandle('adapter_config.json')).getFile()).text();
      const weights = new Uint8Array(await (await (await dir.getFileHandle('adapter_model.safetensors')).getFile()).arrayBuffer());
      return new LoRAAdapter(config, weights);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError('NOT_FOUND', `no saved adapter '${name}' (${e.message})`);
    }
  }

  /** Names of the adapters saved in OPFS. */
  static async listOPFS() {
    const out = [];
    try {
      for await (const [n, h] of (await adapterDir(false)).entries()) if (h.kind === 'directory') out.push(n);
    } catch { /* no folder yet */ }
    return out.sort();
  }

  static async deleteOPFS(name) {
    checkName(name);
    await (await adapterDir(false)).removeEntry(name, { recursive: true });
  }

  /**
   * Loads PEFT files from: a folder URL ending in "/", a list of two
   * Files/Blobs/URLs (adapter_config.json, adapter_model.safetensors), or
   * `{ config, weights }`.
   */
  static async load(source) {
    if (source instanceof LoRAAdapter) return source;
    if (source && typeof source === 'object' && !Array.isArray(source) && 'config' in source && 'weights' in source) {
      const w = source.weights instanceof Uint8Array ? source.weights : new Uint8Array(await new Blob([source.weights]).arrayBuffer());
      return new LoRAAdapter(typeof source.config === 'string' ? source.config : await new Blob([source.config]).text(), w);
    }
    const get = async (x) => {
      if (typeof Blob !== 'undefined' && x instanceof Blob) return x;
      const r = await fetch(String(x));
      if (!r.ok) throw new KilnError('NETWORK_ERROR', `fetching ${x}: HTTP ${r.status}`);
      return r.blob();
    };
    let parts;
    if (typeof source === 'string' || source instanceof URL) {
      const base = String(source);
      if (!base.endsWith('/')) throw new KilnError('INVALID_INPUT', 'an adapter URL is a folder ending in "/"');
      parts = [base + 'adapter_config.json', base + 'adapter_model.safetensors'];
    } else if (Array.isArray(source) && source.length === 2) {
      const name = (x) => String(x.name ?? x);
      const cfg = source.find((x) => name(x).endsWith('.json'));
      const st = source.find((x) => name(x).endsWith('.safetensors'));
      if (!cfg || !st) throw new KilnError('INVALID_INPUT', 'give adapter_config.json and adapter_model.safetensors');
      parts = [cfg, st];
    } else {
      throw new KilnError('INVALID_INPUT', 'an adapter source is a folder URL, [config, weights] files, or { config, weights }');
    }
    const [c, w] = await Promise.all(parts.map(get));
    return new LoRAAdapter(await c.text(), new Uint8Array(await w.arrayBuffer()));
  }
}
