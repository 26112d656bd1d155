// What the demos share: the service worker, load-progress text and error
// messages that say what to do about each KilnError code.

/** Registers the demos' service worker (www/sw.js; its scope covers every demo). */
export function registerServiceWorker(url) {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register(url).catch((e) => console.warn('service worker:', e));
  }
}

/** "Downloading model.onnx: 12.0 / 45.5 MB" for a load-progress event. */
export function progressText(p, label) {
  const mb = (n) => (n / 1e6).toFixed(1);
  if (p.phase === 'compile') return `Preparing ${label} for the GPU…`;
  return `${p.fromCache ? 'Reading cache' : 'Downloading'} ${label}: ${mb(p.loaded)} / ${mb(p.total)} MB`;
}

/**
 * Where a model runs, for the page: "WebGPU: NVIDIA …", or "CPU: cpu (1
 * thread, wasm, …) — why" when Kiln picked its CPU backend (no WebGPU, no
 * adapter, or only a software one such as SwiftShader).
 */
export function deviceText(a) {
  if (a.cpu) return `CPU: ${a.name}${a.reason ? ` — ${a.reason}` : ''}`;
  return `WebGPU: ${a.name || a.backend}${a.software ? ' (a software adapter)' : ''}`;
}

const HINTS = {
  WEBGPU_UNAVAILABLE: 'This browser has no WebGPU: try a recent Chrome or Edge, or enable WebGPU in its flags.',
  NETWORK_ERROR: 'Check the model URL (and your connection), or pick the file from disk.',
  CORRUPT_FILE: 'The file is damaged or incomplete: download it again.',
  UNSUPPORTED_MODEL: 'This file is not a model this page can run.',
  OUT_OF_MEMORY: 'The GPU ran out of memory: try a smaller size or close other tabs.',
  DEVICE_LOST: 'The GPU was reset: load the model again.',
  QUOTA_EXCEEDED: 'The browser storage is full: the model works but is not kept for offline use.',
  INVALID_INPUT: 'Check the settings.',
};

/** "CODE: message — what to do" for any thrown value. */
export function errorText(e) {
  if (!e) return '';
  const code = e.code ?? 'ERROR';
  const hint = HINTS[code];
  return `${code}: ${e.message}${hint ? ` — ${hint}` : ''}`;
}
