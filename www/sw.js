// Offline support for the demos (chat: ./, terrain: ./terrain/, fine-tune: ./finetune/,
// diffusion: ./diffusion/): the app
// shells, the kiln-webgpu package and three.js are kept in a cache (network
// first, so updates show up when online); the models themselves (.gguf,
// .onnx) are cached by kiln-webgpu in OPFS. What the wasm glue imports from
// snippets/ (paths with a build hash) is found in the glue at install. The worker also makes the demos
// cross-origin isolated (COOP/COEP on what it serves; a static host cannot
// set headers), so from the second visit the CPU backend runs on several
// threads (kiln-webgpu's threaded build needs SharedArrayBuffer).
const CACHE = 'kiln-demo-v8';
const PKG = './node_modules/kiln-webgpu/';
const THREE = './node_modules/three/';
const SHELL = ['./', './index.html', './app.js', './common.js', './style.css', './manifest.webmanifest',
  './terrain/', './terrain/index.html', './terrain/app.js', './terrain/view3d.js', './terrain/files.js', './terrain/terrain.css',
  './finetune/', './finetune/index.html', './finetune/app.js', './finetune/plot.js', './finetune/finetune.css',
  './diffusion/', './diffusion/index.html', './diffusion/app.js', './diffusion/diffusion.css',
  ...['kiln.js', 'core.js', 'llm.js', 'diffusion.js', 'adapter.js', 'errors.js', 'cache.js', 'worker.js', 'kiln_wasm.js', 'kiln_wasm_bg.wasm',
    'pool.js', 'pool_worker.js', 'kiln_wasm_mt.js', 'kiln_wasm_mt_bg.wasm'].map((f) => PKG + f),
  ...['build/three.module.js', 'build/three.core.js', 'examples/jsm/controls/OrbitControls.js'].map((f) => THREE + f)];

// The glue's imports from snippets/ (paths with a build hash), read from it.
async function snippets() {
  const out = new Set();
  for (const glue of ['kiln_wasm.js', 'kiln_wasm_mt.js']) {
    const text = await (await fetch(PKG + glue)).text();
    for (const m of text.matchAll(/from\s+["'](\.\/snippets\/[^"']+)["']/g)) out.add(PKG + m[1].slice(2));
  }
  return [...out];
}

self.addEventListener('install', (ev) => {
  ev.waitUntil((async () => {
    const c = await caches.open(CACHE);
    await c.addAll([...SHELL, ...(await snippets())]);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    // Only the demo's own old versions: 'kiln-models' is the package's model cache.
    for (const k of await caches.keys()) if (k.startsWith('kiln-demo-') && k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

// Cross-origin isolation: COEP on every document and script (a worker of
// an isolated page must carry it too), COOP on documents. "credentialless"
// keeps cross-origin model URLs with CORS working.
function isolated(resp, doc) {
  if (resp.type === 'opaque' || resp.status === 0) return resp;
  const h = new Headers(resp.headers);
  h.set('Cross-Origin-Embedder-Policy', 'credentialless');
  if (doc) h.set('Cross-Origin-Opener-Policy', 'same-origin');
  return new Response(resp.body, { status: resp.status, statusText: resp.statusText, headers: h });
}

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || url.origin !== location.origin || /\.(gguf|onnx)$/.test(url.pathname)) return;
  const doc = ev.request.mode === 'navigate';
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(ev.request);
      if (resp.ok) await cache.put(ev.request, resp.clone());
      return isolated(resp, doc);
    } catch (e) {
      const hit = await cache.match(ev.request, { ignoreSearch: true });
      if (hit) return isolated(hit, doc);
      throw e;
    }
  })());
});
