// Kiln chat demo: the kiln-webgpu package used exactly as an npm user would.
import { Kiln } from 'kiln-webgpu';
import { registerServiceWorker, progressText, errorText, deviceText } from './common.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_MODEL = new URL('../models/SmolLM2-135M-Instruct.Q4_1.gguf', location.href).pathname;
let llm = null;
let stop = null;
const messages = [];

registerServiceWorker('./sw.js');

function setError(e) {
  $('error').textContent = errorText(e);
}

function setBusy(busy) {
  $('send').disabled = busy || !llm;
  $('prompt').disabled = !llm;
  $('stop').disabled = !busy;
  $('load').disabled = busy;
}

async function load(source, label) {
  setError(null);
  if (llm) { await llm.dispose(); llm = null; }
  setBusy(true);
  $('progress').hidden = false;
  $('status').textContent = `Loading ${label}…`;
  const t0 = performance.now();
  try {
    llm = await Kiln.loadLLM(source, {
      // Where Kiln picks its CPU backend (no GPU, or only a software
      // adapter): f32 activations, whose greedy answers are PyTorch's (the
      // 8-bit ones are ~1.4x faster but drift: SmolLM2's greedy answer to
      // "What is the capital of France?" then goes astray, as llama.cpp's
      // does; docs/bench/2026-12-04-cpu-fast, and ./dev.sh chat does the same).
      cpuActivations: 'f32',
      onProgress: (p) => {
        $('progress').value = p.fraction;
        $('status').textContent = progressText(p, label);
      },
    });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const where = llm.fromCache ? 'from the browser cache' : 'from the network';
    $('status').textContent = `Ready: ${label} (${where}, ${secs} s)${llm.cacheError ? ` — not cached: ${llm.cacheError.message}` : ''}`;
    const a = llm.adapter;
    $('adapter').textContent = deviceText(a) + (a.cpu ? '' : a.shaderF16 ? ', f16' : ', f32 path (no shader-f16)');
  } catch (e) {
    $('status').textContent = `Could not load ${label}.`;
    setError(e);
  } finally {
    $('progress').hidden = true;
    setBusy(false);
  }
}

function bubble(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  div.textContent = text;
  $('log').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

async function send(ev) {
  ev.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || !llm) return;
  $('prompt').value = '';
  setError(null);
  messages.push({ role: 'user', content: text });
  bubble('user', text);
  const out = bubble('assistant', '');
  stop = new AbortController();
  setBusy(true);
  const num = (id) => Number($(id).value);
  const system = $('system').value.trim();
  try {
    const stream = await llm.chat.completions.create({
      messages: system ? [{ role: 'system', content: system }, ...messages] : messages,
      stream: true,
      temperature: num('temperature'), top_p: num('top_p'), top_k: num('top_k'),
      max_tokens: num('max_tokens'), seed: num('seed'), signal: stop.signal,
    });
    for await (const chunk of stream) {
      out.textContent += chunk.choices[0].delta.content ?? '';
      out.scrollIntoView({ block: 'end' });
    }
  } catch (e) {
    if (e.code !== 'ABORTED') setError(e);
  } finally {
    messages.push({ role: 'assistant', content: out.textContent });
    const s = llm?.lastStats;
    if (s) {
      $('stats').textContent = `${s.completionTokens} tokens · prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s · decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s · ${s.finishReason}`;
    }
    setBusy(false);
  }
}

$('chat').addEventListener('submit', send);
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) send(e);
});
$('stop').addEventListener('click', () => stop?.abort('stopped'));
$('clear').addEventListener('click', async () => {
  messages.length = 0;
  $('log').textContent = '';
  await llm?.resetChat();
});
$('load').addEventListener('click', () => load($('url').value, $('url').value.split('/').pop()));
$('file').addEventListener('change', () => {
  const f = $('file').files[0];
  if (f) load(f, f.name);
});
$('forget').addEventListener('click', async () => {
  await Kiln.deleteModelInCache($('url').value);
  $('status').textContent = 'Deleted the cached copy.';
});

$('url').value = new URLSearchParams(location.search).get('model') || DEFAULT_MODEL;
load($('url').value, $('url').value.split('/').pop());
