// Kiln fine-tune demo: LoRA training of a GGUF model (SmolLM2-135M by
// default) in the browser, in the model's worker, with a live loss plot;
// then the base and the adapted model answer side by side, and the adapter
// is saved as PEFT files (or kept in OPFS).
import { Kiln, LoRAAdapter } from 'kiln-webgpu';
import { registerServiceWorker, progressText, errorText, deviceText } from '../common.js';
import { drawLoss } from './plot.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_MODEL = new URL('../../models/SmolLM2-135M-Instruct.Q4_1.gguf', location.href).pathname;
const SAMPLE = new URL('../../data/lora-facts/train.jsonl', location.href).pathname;
const LORA_ROOM = 64; // loraRank: the largest adapter rank the page applies
const params = new URLSearchParams(location.search);
const MAX_TOKENS = Number(params.get('tokens') || 64);
let llm = null;
let data = null; // { text, name }
let adapter = null;
let stop = null;
const history = [];

registerServiceWorker('../sw.js');
const setError = (e) => { $('error').textContent = errorText(e); };

function setBusy(busy) {
  $('start').disabled = busy || !llm || !data;
  $('stop').disabled = !busy;
  $('load').disabled = busy;
  $('askBtn').disabled = busy || !llm;
  $('saveFiles').disabled = busy || !adapter;
  $('saveOpfs').disabled = busy || !adapter;
}

async function load(url) {
  setError(null);
  if (llm) { await llm.dispose(); llm = null; }
  setBusy(true);
  try {
    llm = await Kiln.loadLLM(url, {
      loraRank: LORA_ROOM,
      onProgress: (p) => { $('progress').value = p.fraction; $('status').textContent = progressText(p, url.split('/').pop()); },
    });
    $('status').textContent = `Ready: ${url.split('/').pop()}${llm.fromCache ? ' (from the browser cache)' : ''}`;
    $('adapter').textContent = `${deviceText(llm.adapter)} (training runs on WebGPU)`;
  } catch (e) {
    $('status').textContent = 'Could not load the model.';
    setError(e);
  } finally {
    $('progress').value = 0;
    setBusy(false);
  }
}

function setData(text, name) {
  data = { text, name };
  const lines = text.split('\n').filter((l) => l.trim()).length;
  $('dataInfo').textContent = `${name}: ${name.endsWith('.jsonl') ? `${lines} examples` : `${text.length} characters`}`;
  setBusy(false);
}

async function train(ev) {
  ev.preventDefault();
  if (!llm || !data) return;
  setError(null);
  history.length = 0;
  const steps = Number($('steps').value);
  const ctl = new AbortController();
  stop = ctl;
  setBusy(true);
  const t0 = performance.now();
  let tokens = 0;
  try {
    const job = llm.trainLoRA(data.text, {
      steps,
      lr: Number($('lr').value),
      rank: Number($('rank').value),
      alpha: 2 * Number($('rank').value),
      batchSize: Number($('batch').value),
      seqLen: Number($('seq').value),
      evalEvery: Number($('every').value),
      valFraction: 0.1,
      maxValSequences: Number(params.get('valmax') || 64),
      warmup: Math.min(10, Math.floor(steps / 10)),
      signal: ctl.signal,
      onStep: (s) => {
        history.push(s);
        tokens += s.tokens;
        $('progress').value = (s.step + 1) / steps;
        const secs = (performance.now() - t0) / 1000;
        $('speed').textContent = `step ${s.step + 1}/${steps} · loss ${s.loss.toFixed(3)} · ${(tokens / secs).toFixed(0)} tokens/s`;
        drawLoss($('plot'), history);
      },
    });
    const out = await job.done;
    adapter = out.adapter;
    await llm.setAdapters([]);
    $('stats').textContent = `${out.aborted ? 'Stopped' : 'Done'} after ${out.steps.length} steps; rank ${adapter.rank}, ${out.info.parameters} trained parameters.`;
  } catch (e) {
    setError(e);
  } finally {
    stop = null;
    setBusy(false);
  }
}

async function answer(withAdapter, question) {
  await llm.setAdapters(withAdapter && adapter ? [{ adapter, scale: 1 }] : []);
  const r = await llm.chat.completions.create({ messages: [{ role: 'user', content: question }], max_tokens: MAX_TOKENS });
  return r.choices[0].message.content;
}

async function ask(ev) {
  ev.preventDefault();
  const q = $('question').value.trim();
  if (!q || !llm) return;
  setError(null);
  setBusy(true);
  try {
    $('baseAnswer').textContent = await answer(false, q);
    $('tunedAnswer').textContent = adapter ? await answer(true, q) : '(train or load an adapter first)';
  } catch (e) {
    setError(e);
  } finally {
    setBusy(false);
  }
}

function download() {
  for (const [name, blob] of Object.entries(adapter.files())) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
}

$('settings').addEventListener('submit', train);
$('stop').addEventListener('click', () => stop?.abort('stopped by the user'));
$('ask').addEventListener('submit', ask);
$('load').addEventListener('click', () => load($('url').value));
$('file').addEventListener('change', async () => {
  const f = $('file').files[0];
  if (f) setData(await f.text(), f.name);
});
$('sample').addEventListener('click', async () => {
  try {
    const r = await fetch(SAMPLE);
    if (!r.ok) throw Object.assign(new Error(`HTTP ${r.status}`), { code: 'NETWORK_ERROR' });
    setData(await r.text(), 'lora-facts.jsonl');
  } catch (e) {
    setError(e);
  }
});
$('saveFiles').addEventListener('click', download);
$('saveOpfs').addEventListener('click', async () => {
  try { await adapter.saveToOPFS('finetune-demo'); $('stats').textContent = 'Adapter kept in this browser (OPFS).'; } catch (e) { setError(e); }
});
$('loadOpfs').addEventListener('click', async () => {
  try { adapter = await LoRAAdapter.fromOPFS('finetune-demo'); $('stats').textContent = `Loaded the kept adapter (rank ${adapter.rank}).`; setBusy(false); } catch (e) { setError(e); }
});

$('url').value = params.get('model') || DEFAULT_MODEL;
// Settings from the URL (?steps=3&batch=1&seq=32…), e.g. for a quick try.
for (const id of ['steps', 'lr', 'rank', 'batch', 'seq', 'every']) if (params.has(id)) $(id).value = params.get(id);
window.demo = { history, get adapter() { return adapter; } };
load($('url').value);
