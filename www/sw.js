// Offline support: the app shell and the kiln-webgpu package are kept in a
// cache (network first, so updates show up when online); the model itself
// is cached by kiln-webgpu in OPFS.
const CACHE = 'kiln-demo-v1';
const PKG = './node_modules/kiln-webgpu/';
const SHELL = ['./', './index.html', './app.js', './style.css', './manifest.webmanifest',
  ...['kiln.js', 'core.js', 'llm.js', 'errors.js', 'cache.js', 'worker.js', 'kiln_wasm.js', 'kiln_wasm_bg.wasm'].map((f) => PKG + f)];

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || url.origin !== location.origin || url.pathname.endsWith('.gguf')) return;
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(ev.request);
      if (resp.ok) await cache.put(ev.request, resp.clone());
      return resp;
    } catch (e) {
      const hit = await cache.match(ev.request, { ignoreSearch: true });
      if (hit) return hit;
      throw e;
    }
  })());
});
