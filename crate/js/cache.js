// The model cache: Origin Private File System (OPFS), with the Cache API as
// the fallback where OPFS is missing. Entries are keyed by the model URL; a
// small marker file written after the last byte makes partial downloads
// invisible.
import { KilnError, toKilnError } from './errors.js';

const DIR = 'kiln-models';
const CACHE = 'kiln-models';

async function key(url) {
  const bytes = new TextEncoder().encode(new URL(url, globalThis.location?.href).href);
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function opfs() {
  try {
    if (!globalThis.navigator?.storage?.getDirectory) return null;
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(DIR, { create: true });
  } catch {
    return null;
  }
}

/** `{ size, stream() }` for a cached model, or null. */
export async function openCached(url) {
  const k = await key(url);
  const dir = await opfs();
  if (dir) {
    try {
      const marker = await (await (await dir.getFileHandle(`${k}.done`)).getFile()).text();
      const file = await (await dir.getFileHandle(k)).getFile();
      if (String(file.size) !== marker.trim()) return null;
      return { size: file.size, stream: () => file.stream(), store: 'opfs' };
    } catch {
      return null;
    }
  }
  if (globalThis.caches) {
    const hit = await (await caches.open(CACHE)).match(k);
    if (!hit) return null;
    const size = Number(hit.headers.get('content-length'));
    return { size, stream: () => hit.body, store: 'cache-api' };
  }
  return null;
}

/**
 * A writer that stores a download as it streams: `write(chunk)`, `close()`,
 * `abort()`. Storage failures (quota) never break the load: they are kept in
 * `error` (a KilnError with code QUOTA_EXCEEDED or CACHE_ERROR).
 */
export async function cacheWriter(url, size) {
  const k = await key(url);
  const dir = await opfs();
  const w = { error: null, store: dir ? 'opfs' : 'cache-api' };
  const fail = (e) => {
    if (!w.error) {
      const err = toKilnError(e);
      w.error = err.code === 'QUOTA_EXCEEDED' ? err : new KilnError('CACHE_ERROR', `caching the model failed: ${err.message}`);
    }
  };
  try {
    const est = await navigator.storage?.estimate?.();
    if (est && est.quota - est.usage < size) {
      fail(new KilnError('QUOTA_EXCEEDED', `the model (${size} bytes) does not fit the browser's storage quota (${est.quota - est.usage} bytes free); it will load but not be cached`));
    }
  } catch { /* no estimate: try anyway */ }
  if (dir) {
    let writable = null;
    try {
      await dir.removeEntry(`${k}.done`).catch(() => {});
      writable = await (await dir.getFileHandle(k, { create: true })).createWritable();
    } catch (e) { fail(e); }
    w.write = async (chunk) => { if (!w.error && writable) await writable.write(chunk).catch(fail); };
    w.close = async () => {
      if (!writable) return;
      if (w.error) { await writable.abort().catch(() => {}); await dir.removeEntry(k).catch(() => {}); return; }
      try {
        await writable.close();
        const m = await (await dir.getFileHandle(`${k}.done`, { create: true })).createWritable();
        await m.write(String(size));
        await m.close();
      } catch (e) { fail(e); await dir.removeEntry(k).catch(() => {}); }
    };
    w.abort = async () => { if (writable) await writable.abort().catch(() => {}); await dir.removeEntry(k).catch(() => {}); };
    return w;
  }
  const parts = [];
  w.write = async (chunk) => { if (!w.error) parts.push(chunk.slice()); };
  w.close = async () => {
    if (w.error || !globalThis.caches) return;
    try {
      const headers = { 'content-length': String(size), 'content-type': 'application/octet-stream' };
      await (await caches.open(CACHE)).put(k, new Response(new Blob(parts), { headers }));
    } catch (e) { fail(e); }
    parts.length = 0;
  };
  w.abort = async () => { parts.length = 0; };
  return w;
}

export async function hasModelInCache(url) {
  return (await openCached(url)) !== null;
}

export async function deleteModelInCache(url) {
  const k = await key(url);
  const dir = await opfs();
  if (dir) {
    await dir.removeEntry(`${k}.done`).catch(() => {});
    await dir.removeEntry(k).catch(() => {});
  }
  if (globalThis.caches) await (await caches.open(CACHE)).delete(k);
}
