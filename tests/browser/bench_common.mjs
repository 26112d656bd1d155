// Shared by the browser benchmarks (bench.mjs, bench_terrain.mjs): the peer
// package installed on first use (npm, not saved), a cross-origin-isolated
// static server for the repository (peers' threaded wasm needs
// SharedArrayBuffer) with the peer's package mounted under a prefix, and
// headless Chromium with WebGPU.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile, stat, access } from 'node:fs/promises';
import { join, extname, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');

/** `node_modules/<name>` under tests/browser, installing `name@version` when `probe` is missing. */
export async function peerPackage(name, version, probe) {
  const dir = join(here, 'node_modules', name);
  try {
    await access(join(dir, probe));
  } catch {
    // npm's output goes to stderr: the benchmarks print their results on stdout.
    execFileSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', `${name}@${version}`], { cwd: here, stdio: ['ignore', 2, 2] });
  }
  return dir;
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

/** Serves the repository, and `dir` under `prefix` (e.g. "/ort/"); resolves to { server, origin }. */
export async function serve(prefix, dir) {
  const server = createServer(async (req, res) => {
    let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const base = path.startsWith(prefix) ? dir : root;
    if (path.startsWith(prefix)) path = path.slice(prefix.length - 1);
    try {
      let file = resolve(base, '.' + path);
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'content-length': body.length,
        'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
      res.end(body);
    } catch { res.writeHead(404).end(); }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Headless Chromium with WebGPU (SwiftShader where there is no GPU). */
export function launchChromium() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--enable-unsafe-webgpu', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update'] });
}

/** A new page of `browser` on the test harness, its errors (all output with VERBOSE) logged to `log`. */
export async function harnessPage(browser, origin, log) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (process.env.VERBOSE || m.type() === 'error') log(`[page ${m.type()}] ${m.text()}`); });
  await page.goto(`${origin}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true);
  return page;
}
