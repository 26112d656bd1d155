// Where Kiln's CPU backend spends its time in the browser (a diagnostic,
// not a test): one 128² terrain map on the main thread (`worker: false`,
// `adapterPreference: 'cpu'`) under Chromium's sampling profiler (CDP
// `Profiler`), printed as self time per function, slowest first. Wasm
// functions have names only in a build that keeps the name section
// (`tools/build_pkg.sh --dev`, or a release build without wasm-opt).
//   node tests/browser/profile_cpu.mjs [--top 25]
import { serve, launchChromium, harnessPage } from './bench_common.mjs';

const argv = process.argv.slice(2);
const TOP = Number(argv[argv.indexOf('--top') + 1] || 25);
const MODEL = '/models/terrain_consistency_unet_difficulty100.onnx';
const { server, origin } = await serve('/none/', '.');
const browser = await launchChromium();
const page = await harnessPage(browser, origin, (s) => process.stderr.write(`${s}\n`));
const cdp = await page.context().newCDPSession(page);
await page.evaluate(async (url) => {
  window.dm = await window.kiln.Kiln.loadDiffusion(url, { cache: false, worker: false, adapterPreference: 'cpu' });
  await window.dm.generate({ difficulty: 40, width: 128, height: 128, seed: 1 });
}, MODEL);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const ms = await page.evaluate(async () => {
  const t = performance.now();
  await window.dm.generate({ difficulty: 40, width: 128, height: 128, seed: 2 });
  return performance.now() - t;
});
const { profile } = await cdp.send('Profiler.stop');
await browser.close();
server.close();
const self = new Map();
const dt = new Map();
for (let i = 0; i < profile.samples.length; i++) dt.set(profile.samples[i], (dt.get(profile.samples[i]) || 0) + (profile.timeDeltas[i] || 0));
for (const n of profile.nodes) {
  const name = n.callFrame.functionName || `(${n.callFrame.url.split('/').pop() || 'anonymous'})`;
  self.set(name, (self.get(name) || 0) + (dt.get(n.id) || 0) / 1000);
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
console.log(`one 128² map: ${ms.toFixed(0)} ms; ${total.toFixed(0)} ms sampled`);
for (const [name, t] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  console.log(`${t.toFixed(1).padStart(9)} ms ${(100 * t / total).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`);
}
