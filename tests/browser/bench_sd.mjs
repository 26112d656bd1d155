// Browser benchmark (not a test): a 256×256 image end to end from the tiny
// diffusers folders (tests/fixtures/sd/tiny_sd15 and tiny_sd21: the SD 1.x
// and 2.x module kinds at tiny widths) in headless Chromium, Kiln's package
// in its worker on WebGPU (SwiftShader where there is no GPU). Per folder
// and setting: load (fetch + compile), the first image, then the best of
// --runs images with the per-phase figures the model reports. Settings: 4
// Euler steps with guidance (two samples per step) and 1 step without
// (SD-Turbo's way); with --previews, the guided run also decodes every
// step's TAESD preview. Prints JSON to stdout (progress on stderr).
//   node tests/browser/bench_sd.mjs [--runs 2] [--size 256] [--previews]
// Needs pkg/ built (tools/build_pkg.sh).
import { cpus } from 'node:os';
import { here, serve, launchChromium, harnessPage } from './bench_common.mjs';

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const RUNS = Number(opt('--runs', 2));
const SIZE = Number(opt('--size', 256));
const PREVIEWS = argv.includes('--previews');
const log = (s) => process.stderr.write(`${s}\n`);

const { server, origin } = await serve('/unused/', here);
const browser = await launchChromium();

async function run(folder, guided, steps) {
  const page = await harnessPage(browser, origin, log);
  const r = await page.evaluate(async ({ dir, size, guided, steps, runs, previews }) => {
    const t0 = performance.now();
    const dm = await window.kiln.Kiln.loadDiffusion(dir, { cache: false, width: size, height: size, guidance: guided, previews });
    const load = performance.now() - t0;
    let shown = 0;
    const req = { prompt: 'a lighthouse at dusk', steps, scheduler: 'euler', guidance: guided ? 7.5 : 0, seed: 1, onStep: (p) => { if (p.preview) shown++; } };
    await dm.generate(req);
    const first = performance.now() - t0;
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await dm.generate({ ...req, seed: 2 + i });
      times.push(performance.now() - t);
    }
    const out = { load, first, times, adapter: dm.adapter, width: dm.width, height: dm.height, previews: shown, bytes: await dm.deviceBytes() };
    await dm.dispose();
    return out;
  }, { dir: `/tests/fixtures/sd/${folder}/`, size: SIZE, guided, steps, runs: RUNS, previews: PREVIEWS && guided });
  await page.close();
  const ms = (x) => Math.round(x * 10) / 10;
  return { folder, size: `${r.width}×${r.height}`, steps, guidance: guided ? 7.5 : 0, previews: r.previews,
    adapter: r.adapter.name || r.adapter.backend, loadMs: ms(r.load), firstMs: ms(r.first),
    msPerImage: ms(Math.min(...r.times)), msPerStep: ms(Math.min(...r.times) / steps), runsMs: r.times.map(ms), deviceBytes: r.bytes };
}

const results = [];
for (const folder of ['tiny_sd15', 'tiny_sd21']) {
  for (const [guided, steps] of [[true, 4], [false, 1]]) {
    log(`== ${folder}, ${steps} step(s)${guided ? ', guidance' : ''}`);
    try {
      const r = await run(folder, guided, steps);
      results.push(r);
      log(`   ${r.msPerImage} ms per image, first ${(r.firstMs / 1000).toFixed(1)} s`);
    } catch (e) {
      results.push({ folder, steps, error: String(e.message || e).split('\n')[0] });
      log(`   failed: ${e.message}`);
    }
  }
}
const version = browser.version();
await browser.close();
server.close();
console.log(JSON.stringify({
  what: `a ${SIZE}×${SIZE} image end to end (text encoder, UNet steps, VAE decode; worker, WebGPU), headless Chromium`,
  chromium: version, cpus: cpus().length, cpu: cpus()[0].model, runs: RUNS, results,
}, null, 1));
