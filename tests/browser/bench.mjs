// Browser benchmark (not a test): Kiln (kiln-webgpu, worker; on WebGPU and
// on its CPU backend, adapterPreference "cpu", wasm SIMD128, 1..N threads)
// vs wllama (llama.cpp in wasm, the same thread counts) on the same GGUF,
// same headless Chromium (a cross-origin-isolated page), same run. Prints a
// markdown table; figures belong in docs/bench/.
//   node tests/browser/bench.mjs [--tokens 32] [--runs 2] [--threads 1,2] [--webgpu 0]
// Needs pkg/ built (tools/build_pkg.sh) and the model (tools/fetch_model.sh);
// installs @wllama/wllama (npm, not saved) on first use.
import { cpus } from 'node:os';
import { peerPackage, serve, launchChromium } from './bench_common.mjs';

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const TOKENS = arg('--tokens', 32);
const RUNS = arg('--runs', 2);
const THREADS = (process.argv.includes('--threads') ? process.argv[process.argv.indexOf('--threads') + 1] : '1,2').split(',').map(Number);
const WEBGPU = arg('--webgpu', 1) !== 0;
const MODEL = '/models/SmolLM2-135M-Instruct.Q4_1.gguf';
const WLLAMA = '3.13.0';

const wl = await peerPackage('@wllama/wllama', WLLAMA, 'esm/index.js');
const { server, origin } = await serve('/wllama/', wl);
const browser = await launchChromium();
const page = await browser.newPage();
page.on('console', (m) => { if (process.env.VERBOSE) console.log(`[page] ${m.text()}`); });
await page.goto(`${origin}/tests/browser/harness.html`);
await page.waitForFunction(() => window.harnessReady === true);

// The same raw prompt for both (no chat template): streamed, greedy.
const PROMPT = 'Once upon a time, in a small village nestled between rolling hills and a quiet river, there lived an old clockmaker named Elias. Every morning he';

const kilnRun = (opts) => page.evaluate(async ({ url, prompt, n, runs, opts }) => {
  const t0 = performance.now();
  const llm = await window.kiln.Kiln.loadLLM(url, { cache: false, maxContext: 512, ...opts });
  const load = (performance.now() - t0) / 1000;
  const out = [];
  for (let r = 0; r < runs; r++) {
    await llm.resetChat();
    for await (const _ of llm.generate(prompt, { max_tokens: n, ignore_eos: true }));
    out.push(llm.lastStats);
  }
  const adapter = llm.adapter;
  await llm.dispose();
  return { load, runs: out, adapter };
}, { url: MODEL, prompt: PROMPT, n: TOKENS, runs: RUNS, opts });
const kiln = WEBGPU ? await kilnRun({ adapterPreference: 'webgpu' }) : null;
const rows = [];
for (const t of THREADS) {
  const kilnCpu = await kilnRun({ adapterPreference: 'cpu', cpuThreads: t });
  const wllama = await page.evaluate(async ({ url, prompt, n, runs, t }) => {
    const { Wllama } = await import('/wllama/esm/index.js');
    const w = new Wllama({ default: '/wllama/esm/wasm/wllama.wasm' });
    const t0 = performance.now();
    await w.loadModelFromUrl(new URL(url, location.href).href, { n_ctx: 512, n_gpu_layers: 0, n_threads: t, useCache: false });
    const load = (performance.now() - t0) / 1000;
    const out = [];
    for (let r = 0; r < runs; r++) {
      const start = performance.now();
      let first = 0, count = 0, last = 0, promptTokens = 0, cached = 0;
      // cache_prompt: false — llama.cpp's server (which wllama 3 embeds)
      // otherwise keeps the prompt's KV cache from the previous run and
      // reuses the matching prefix, so runs after the first would not
      // prefill at all. Kiln resets its chat before each run.
      const stream = await w.createCompletion({ prompt, max_tokens: n, temperature: 0, stream: true, ignore_eos: true, cache_prompt: false });
      for await (const c of stream) {
        const now = performance.now();
        if (!first) first = now;
        last = now;
        count++;
        if (c.usage) {
          promptTokens = c.usage.prompt_tokens;
          cached = c.usage.prompt_tokens_details?.cached_tokens ?? 0;
        }
      }
      out.push({ first: (first - start) / 1000, decode: count > 1 ? (count - 1) / ((last - first) / 1000) : 0, count, promptTokens, cached });
    }
    const threads = w.getNumThreads();
    await w.exit();
    return { load, runs: out, threads, isolated: self.crossOriginIsolated };
  }, { url: MODEL, prompt: PROMPT, n: TOKENS, runs: RUNS, t });
  rows.push({ t, kilnCpu, wllama });
}

await browser.close();
server.close();

const best = (xs, f) => Math.max(...xs.map(f));
const first = (runs) => Math.min(...runs.map((s) => s.prefillSeconds));
console.log(`\nheadless Chromium ${browser.version?.() ?? ''}, ${cpus().length} cores (${cpus()[0].model}); ${TOKENS} generated, best of ${RUNS}\n`);
console.log('| engine | backend | load s | prompt → first token s | prefill tok/s | decode tok/s |');
console.log('|---|---|---:|---:|---:|---:|');
if (kiln) {
  console.log(`| Kiln (kiln-webgpu, worker) | WebGPU: ${kiln.adapter.backend} ${kiln.adapter.name || '(SwiftShader)'}, f16 ${kiln.adapter.shaderF16} | ${kiln.load.toFixed(2)} | ${first(kiln.runs).toFixed(2)} | ${best(kiln.runs, (s) => s.prefillTokensPerSecond).toFixed(1)} | ${best(kiln.runs, (s) => s.decodeTokensPerSecond).toFixed(2)} |`);
}
const ratios = [];
for (const { t, kilnCpu, wllama } of rows) {
  const pt = kilnCpu.runs[0].promptTokens;
  const cDecode = best(kilnCpu.runs, (s) => s.decodeTokensPerSecond);
  const cFirst = first(kilnCpu.runs);
  const wDecode = best(wllama.runs, (s) => s.decode);
  const wFirst = Math.min(...wllama.runs.map((s) => s.first));
  console.log(`| Kiln (kiln-webgpu, worker) | CPU: ${kilnCpu.adapter.name} | ${kilnCpu.load.toFixed(2)} | ${cFirst.toFixed(2)} | ${best(kilnCpu.runs, (s) => s.prefillTokensPerSecond).toFixed(1)} | ${cDecode.toFixed(2)} |`);
  console.log(`| wllama ${WLLAMA} | wasm CPU, threads: ${wllama.threads}, isolated ${wllama.isolated} | ${wllama.load.toFixed(2)} | ${wFirst.toFixed(2)} | ${(pt / wFirst).toFixed(1)} | ${wDecode.toFixed(2)} |`);
  ratios.push(`${t} thread(s), ${pt}-token prompt: decode ${(cDecode / wDecode).toFixed(2)}x, prompt → first token ${(wFirst / cFirst).toFixed(2)}x (per run: Kiln ${kilnCpu.runs.map((s) => s.prefillSeconds.toFixed(2)).join(', ')} s; wllama ${wllama.runs.map((s) => `${s.first.toFixed(2)} (${s.cached} cached)`).join(', ')} s)`);
}
console.log('\nKiln CPU / wllama (speed; first token: wllama\'s time / Kiln\'s):');
for (const r of ratios) console.log(`- ${r}`);
