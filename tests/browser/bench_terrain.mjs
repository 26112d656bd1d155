// Browser benchmark (not a test): one 128×128 terrain map from the diffusion
// UNet in the same headless Chromium, Kiln (kiln-webgpu, worker, WebGPU) vs
// ONNX Runtime Web on the same ONNX file: its wasm provider with 1 and 2
// threads and (only when asked for: ~2 minutes a map on SwiftShader) its
// WebGPU provider. Each engine and setting runs in a fresh page; "first" is
// load + the first call, "ms per map" the best of --runs calls after it,
// divided by the batch. Prints JSON to stdout (progress goes to stderr).
//   node tests/browser/bench_terrain.mjs [--runs 2] [--batch 1,8] [--engines kiln,ort-wasm,ort-webgpu]
// (default engines: kiln,ort-wasm)
// Needs pkg/ built (tools/build_pkg.sh) and the model (tools/fetch_terrain.sh);
// installs onnxruntime-web (npm, not saved) on first use.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile, stat, access } from 'node:fs/promises';
import { join, extname, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const RUNS = Number(opt('--runs', 2));
const BATCHES = opt('--batch', '1').split(',').map(Number);
const ENGINES = opt('--engines', 'kiln,ort-wasm').split(',');
const MODEL = '/models/terrain_consistency_unet_difficulty100.onnx';
const ORT = '1.30.0';
const log = (s) => process.stderr.write(`${s}\n`);

const ortDir = join(here, 'node_modules/onnxruntime-web');
if (ENGINES.some((e) => e.startsWith('ort'))) {
  try {
    await access(join(ortDir, 'dist/ort.all.min.mjs'));
  } catch {
    execFileSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', `onnxruntime-web@${ORT}`], { cwd: here, stdio: ['ignore', 2, 2] });
  }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const server = createServer(async (req, res) => {
  let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const base = path.startsWith('/ort/') ? ortDir : root;
  if (path.startsWith('/ort/')) path = path.slice(4);
  try {
    let file = resolve(base, '.' + path);
    if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
    const body = await readFile(file);
    // Cross-origin isolation: ORT's threaded wasm needs SharedArrayBuffer.
    res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'content-length': body.length,
      'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    res.end(body);
  } catch { res.writeHead(404).end(); }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update'] });

async function freshPage() {
  const page = await browser.newPage();
  page.on('console', (m) => { if (process.env.VERBOSE || m.type() === 'error') log(`[page ${m.type()}] ${m.text()}`); });
  await page.goto(`${origin}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true);
  return page;
}

async function kiln(batch) {
  const page = await freshPage();
  const r = await page.evaluate(async ({ url, batch, runs }) => {
    const t0 = performance.now();
    const dm = await window.kiln.Kiln.loadDiffusion(url, { cache: false, batch });
    const load = performance.now() - t0;
    const req = { difficulty: 40, width: 128, height: 128, seed: 1, count: batch };
    await dm.generate(req);
    const first = performance.now() - t0;
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await dm.generate({ ...req, seed: 2 + i });
      times.push(performance.now() - t);
    }
    const adapter = dm.adapter;
    await dm.dispose();
    return { load, first, times, adapter, isolated: self.crossOriginIsolated };
  }, { url: MODEL, batch, runs: RUNS });
  await page.close();
  return { engine: 'kiln', provider: `webgpu (${r.adapter.name || r.adapter.backend})`, batch, loadMs: r.load, firstMs: r.first,
    msPerMap: Math.min(...r.times) / batch, runsMs: r.times, crossOriginIsolated: r.isolated };
}

async function ort(batch, ep, threads) {
  const page = await freshPage();
  const r = await page.evaluate(async ({ url, batch, runs, ep, threads }) => {
    const ort = await import('/ort/dist/ort.all.min.mjs');
    ort.env.wasm.wasmPaths = '/ort/dist/';
    ort.env.wasm.numThreads = threads;
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(url, { executionProviders: [ep], graphOptimizationLevel: 'all' });
    const load = performance.now() - t0;
    const n = 128 * 128;
    const noisy = new Float32Array(batch * n);
    let s = 1;
    for (let i = 0; i < noisy.length; i++) { s = (s * 1103515245 + 12345) >>> 0; noisy[i] = ((s / 2 ** 32) - 0.5) * 160; }
    const feeds = {
      noisy: new ort.Tensor('float32', noisy, [batch, 1, 128, 128]),
      sigma: new ort.Tensor('float32', new Float32Array(batch).fill(80), [batch]),
      difficulty: new ort.Tensor('float32', new Float32Array(batch).fill(39 / 99), [batch]),
    };
    const read = async (out) => (out.denoised.location === 'cpu' ? out.denoised.data : await out.denoised.getData());
    await read(await session.run(feeds));
    const first = performance.now() - t0;
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await read(await session.run(feeds));
      times.push(performance.now() - t);
    }
    await session.release();
    return { load, first, times, isolated: self.crossOriginIsolated };
  }, { url: MODEL, batch, runs: RUNS, ep, threads });
  await page.close();
  return { engine: `onnxruntime-web ${ORT}`, provider: ep === 'wasm' ? `wasm, ${threads} thread(s)` : ep, batch, loadMs: r.load, firstMs: r.first,
    msPerMap: Math.min(...r.times) / batch, runsMs: r.times, crossOriginIsolated: r.isolated };
}

const ms = (x) => Math.round(x * 10) / 10;
const tidy = (r) => ({ ...r, loadMs: ms(r.loadMs), firstMs: ms(r.firstMs), msPerMap: ms(r.msPerMap), runsMs: r.runsMs.map(ms) });
const results = [];
const attempt = async (what, f) => {
  log(`== ${what}`);
  const t0 = Date.now();
  try {
    const r = tidy(await f());
    results.push(r);
    log(`   ${(r.msPerMap / 1000).toFixed(2)} s per map, first ${(r.firstMs / 1000).toFixed(1)} s (${((Date.now() - t0) / 1000).toFixed(0)} s in all)`);
  } catch (e) {
    results.push({ what, error: String(e.message || e).split('\n')[0] });
    log(`   failed: ${e.message}`);
  }
};
for (const batch of BATCHES) {
  if (ENGINES.includes('kiln')) await attempt(`kiln batch ${batch}`, () => kiln(batch));
  if (ENGINES.includes('ort-wasm')) {
    for (const threads of [1, 2]) await attempt(`ort wasm ${threads} thread(s), batch ${batch}`, () => ort(batch, 'wasm', threads));
  }
  if (ENGINES.includes('ort-webgpu')) await attempt(`ort webgpu batch ${batch}`, () => ort(batch, 'webgpu', 1));
}
const version = browser.version();
await browser.close();
server.close();
console.log(JSON.stringify({
  what: 'ms per 128×128 terrain map (one UNet call per map), same headless Chromium',
  chromium: version, cpus: cpus().length, cpu: cpus()[0].model, model: MODEL, runs: RUNS, results,
}, null, 1));
