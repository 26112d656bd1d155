// Browser benchmark (not a test): one 128×128 terrain map from the diffusion
// UNet in the same headless Chromium, Kiln (kiln-webgpu, worker: WebGPU, and
// with `kiln-cpu` its fast CPU backend, wasm SIMD128 on 1 and 2 threads) vs
// ONNX Runtime Web on the same ONNX file: its wasm provider with 1 and 2
// threads and (only when asked for: ~2 minutes a map on SwiftShader) its
// WebGPU provider. Each engine and setting runs in a fresh page; "first" is
// load + the first call, "ms per map" the best of --runs calls after it,
// divided by the batch. Prints JSON to stdout (progress goes to stderr).
//   node tests/browser/bench_terrain.mjs [--runs 2] [--batch 1,8] [--engines kiln,kiln-cpu,ort-wasm,ort-webgpu]
// (default engines: kiln,kiln-cpu,ort-wasm)
// Needs pkg/ built (tools/build_pkg.sh) and the model (tools/fetch_terrain.sh);
// installs onnxruntime-web (npm, not saved) on first use.
import { cpus } from 'node:os';
import { join } from 'node:path';
import { here, peerPackage, serve, launchChromium, harnessPage } from './bench_common.mjs';

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const RUNS = Number(opt('--runs', 2));
const BATCHES = opt('--batch', '1').split(',').map(Number);
const ENGINES = opt('--engines', 'kiln,kiln-cpu,ort-wasm').split(',');
const MODEL = '/models/terrain_consistency_unet_difficulty100.onnx';
const ORT = '1.30.0';
const log = (s) => process.stderr.write(`${s}\n`);

// The ORT files are only needed (and installed) when an ORT engine runs.
const ortDir = ENGINES.some((e) => e.startsWith('ort'))
  ? await peerPackage('onnxruntime-web', ORT, 'dist/ort.all.min.mjs')
  : join(here, 'node_modules/onnxruntime-web');
const { server, origin } = await serve('/ort/', ortDir);
const browser = await launchChromium();

const freshPage = () => harnessPage(browser, origin, log);

async function kiln(batch, cpu = false, threads = 1) {
  const page = await freshPage();
  const r = await page.evaluate(async ({ url, batch, runs, cpu, threads }) => {
    const t0 = performance.now();
    const dm = await window.kiln.Kiln.loadDiffusion(url, { cache: false, batch, ...(cpu ? { adapterPreference: 'cpu', cpuThreads: threads } : { adapterPreference: 'webgpu' }) });
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
  }, { url: MODEL, batch, runs: RUNS, cpu, threads });
  await page.close();
  return { engine: 'kiln', provider: r.adapter.cpu ? r.adapter.name : `webgpu (${r.adapter.name || r.adapter.backend})`, batch, loadMs: r.load, firstMs: r.first,
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
  if (ENGINES.includes('kiln-cpu')) {
    for (const threads of [1, 2]) await attempt(`kiln cpu ${threads} thread(s), batch ${batch}`, () => kiln(batch, true, threads));
  }
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
