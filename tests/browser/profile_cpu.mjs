// Where Kiln's CPU backend spends its time in the browser (a diagnostic,
// not a test): one 128² terrain map, or with --llm SmolLM2 generating 32
// tokens from a 30-token prompt, on the main thread (`worker: false`,
// `adapterPreference: 'cpu'`) under Chromium's sampling profiler (CDP
// `Profiler`), printed as self time per function, slowest first. Wasm
// functions have names only in a build that keeps the name section
// (`tools/build_pkg.sh --dev`, or a release build without wasm-opt).
//   node tests/browser/profile_cpu.mjs [--llm] [--top 25]
import { serve, launchChromium, harnessPage } from './bench_common.mjs';

const argv = process.argv.slice(2);
const TOP = Number(argv[argv.indexOf('--top') + 1] || 25);
const LLM = argv.includes('--llm');
const MODEL = LLM ? '/models/SmolLM2-135M-Instruct.Q4_1.gguf' : '/models/terrain_consistency_unet_difficulty100.onnx';
const PROMPT = 'Once upon a time, in a small village nestled between rolling hills and a quiet river, there lived an old clockmaker named Elias. Every morning he';
const { server, origin } = await serve('/none/', '.');
const browser = await launchChromium();
const page = await harnessPage(browser, origin, (s) => process.stderr.write(`${s}\n`));
const cdp = await page.context().newCDPSession(page);
// One untimed run first (compilation, first-touch allocations).
const work = LLM
  ? async ({ url, prompt, load }) => {
    if (load) window.m = await window.kiln.Kiln.loadLLM(url, { cache: false, worker: false, adapterPreference: 'cpu' });
    await window.m.resetChat();
    for await (const _ of window.m.generate(prompt, { max_tokens: 32, ignore_eos: true }));
    return window.m.lastStats;
  }
  : async ({ url, load }) => {
    if (load) window.m = await window.kiln.Kiln.loadDiffusion(url, { cache: false, worker: false, adapterPreference: 'cpu' });
    await window.m.generate({ difficulty: 40, width: 128, height: 128, seed: 1 });
    return {};
  };
await page.evaluate(work, { url: MODEL, prompt: PROMPT, load: true });
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const t0 = Date.now();
const stats = await page.evaluate(work, { url: MODEL, prompt: PROMPT, load: false });
const ms = Date.now() - t0;
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
console.log(`${LLM ? `32 tokens from a 30-token prompt (${JSON.stringify(stats)})` : 'one 128² map'}: ${ms.toFixed(0)} ms; ${total.toFixed(0)} ms sampled`);
for (const [name, t] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  console.log(`${t.toFixed(1).padStart(9)} ms ${(100 * t / total).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`);
}
