// The worker entry: one model per worker, driven by messages from the
// main-thread proxy (kiln.js). Generation runs here, so the page never blocks.
import { loadModel, loadDiffusionModel } from './core.js';
import { toKilnError } from './errors.js';

let model = null;
const runs = new Map();

const reply = (id, msg, transfer = []) => postMessage({ id, ...msg }, transfer);
const fail = (id, e) => {
  const err = toKilnError(e);
  reply(id, { error: { code: err.code, message: err.message } });
};

async function handle(m) {
  const { id, op } = m;
  try {
    if (op === 'abort') {
      runs.get(m.target)?.abort(m.reason ?? 'aborted');
      return;
    }
    if (op === 'load') {
      const ctl = new AbortController();
      runs.set(id, ctl);
      try {
        const load = m.kind === 'diffusion' ? loadDiffusionModel : loadModel;
        model = await load(m.source, { ...m.opts, signal: ctl.signal, onProgress: (p) => reply(id, { progress: p }) });
      } finally {
        runs.delete(id);
      }
      reply(id, { ok: true, value: { adapter: model.adapter, fromCache: model.fromCache, cacheError: model.cacheError, batch: model.batch, kind: model.kind, width: model.width, height: model.height, previews: model.previews } });
      return;
    }
    if (!model) throw Object.assign(new Error('no model is loaded in this worker'), { code: 'DISPOSED' });
    if (op === 'run') {
      const ctl = new AbortController();
      runs.set(id, ctl);
      try {
        const r = await model.run(m.ids, m.opts, (text) => reply(id, { text }), ctl.signal);
        reply(id, { ok: true, value: r });
      } finally {
        runs.delete(id);
      }
      return;
    }
    if (op === 'train') {
      const ctl = new AbortController();
      runs.set(id, ctl);
      try {
        const r = await model.train(m.data, m.opts, (s) => reply(id, { progress: s }), ctl.signal);
        reply(id, { ok: true, value: r }, [r.adapter.weights.buffer]);
      } finally {
        runs.delete(id);
      }
      return;
    }
    if (op === 'generate') {
      const ctl = new AbortController();
      runs.set(id, ctl);
      try {
        const r = await model.generate(m.req, (p) => reply(id, { progress: p }), ctl.signal);
        reply(id, { ok: true, value: r }, r.heights ? [r.heights.buffer, r.image.buffer] : [r.image.buffer]);
      } finally {
        runs.delete(id);
      }
      return;
    }
    if (op === 'call') {
      const value = await model[m.method](...(m.args || []));
      if (m.method === 'dispose') model = null;
      reply(id, { ok: true, value });
    }
  } catch (e) {
    fail(id, e);
  }
}

onmessage = (ev) => { handle(ev.data); };
postMessage({ ready: true });
