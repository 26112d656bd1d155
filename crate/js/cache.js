// The model cache: Origin Private File System (OPFS), with the Cache API as
// the fallback where OPFS is missing. Entries are keyed by the model URL; a
// small marker file written after the last byte — `{ size, sum }`, a
// checksum of the bytes — makes partial downloads invisible (OPFS writes
// land in a swap file until the writable is closed, so a closed tab leaves
// at most an unmarked file), and an entry whose bytes no longer match it (a
// damaged disk file) is dropped on open, so the model is fetched again. The
// Cache API entry is put only whole and carries the same checksum (header
// x-kiln-sum), checked the same way. A Web Lock per URL makes concurrent loads
// of one model (two tabs) download it once: the second waits and reads the
// first's entry.
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

/** FNV-1a (32-bit) over a byte stream, piece by piece. */
export class Checksum {
  constructor() { this.h = 0x811c9dc5; }
  update(bytes) {
    let h = this.h;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619);
    this.h = h;
  }
  value() { return this.h >>> 0; }
}

/** The checksum and length of everything `stream` yields. */
async function digest(stream) {
  const sum = new Checksum();
  let bytes = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sum.update(value);
    bytes += value.length;
  }
  return { sum: sum.value(), bytes };
}

/**
 * Holds the cache lock of `url` (Web Locks; a no-op without them) until the
 * returned release function is called.
 */
export async function cacheLock(url) {
  if (!globalThis.navigator?.locks) return () => {};
  const name = `kiln-cache:${await key(url)}`;
  return new Promise((granted) => {
    navigator.locks.request(name, () => new Promise((release) => granted(release)));
  });
}

/** `{ size, stream() }` for a cached model, or null. */
export async function openCached(url) {
  const k = await key(url);
  const dir = await opfs();
  if (dir) {
    let marker;
    let file;
    try {
      marker = JSON.parse(await (await (await dir.getFileHandle(`${k}.done`)).getFile()).text());
      file = await (await dir.getFileHandle(k)).getFile();
    } catch {
      return null;
    }
    let ok = marker && file.size === marker.size && Number.isInteger(marker.sum);
    if (ok) ok = (await digest(file.stream())).sum === marker.sum;
    if (!ok) {
      // Damaged or from an older format: drop it, the caller fetches again.
      await dir.removeEntry(`${k}.done`).catch(() => {});
      await dir.removeEntry(k).catch(() => {});
      return null;
    }
    return { size: file.size, stream: () => file.stream(), blob: file, store: 'opfs' };
  }
  if (globalThis.caches) {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(k);
    if (!hit) return null;
    // The same check as OPFS: the stored size and checksum against the bytes.
    const size = Number(hit.headers.get('content-length'));
    const want = Number(hit.headers.get('x-kiln-sum'));
    const got = await digest(hit.body);
    const again = got.bytes === size && Number.isInteger(want) && got.sum === want ? await cache.match(k) : null;
    if (!again) {
      await cache.delete(k);
      return null;
    }
    return { size, stream: () => again.body, store: 'cache-api' };
  }
  return null;
}

/**
 * A writer that stores a download as it streams: `write(chunk)`, `close()`,
 * `abort()`. Storage failures (quota) never break the load: they are kept in
 * `error` (a KilnError with code QUOTA_EXCEEDED or CACHE_ERROR).
 */
export async function cacheWriter(url, size, release = () => {}) {
  const k = await key(url);
  const dir = await opfs();
  const w = { error: null, store: dir ? 'opfs' : 'cache-api' };
  const sum = new Checksum();
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
    let written = 0;
    w.write = async (chunk) => {
      if (w.error || !writable) return;
      sum.update(chunk);
      written += chunk.length;
      await writable.write(chunk).catch(fail);
    };
    w.close = async () => {
      try {
        if (!writable) return;
        if (w.error || written !== size) {
          await writable.abort().catch(() => {});
          await dir.removeEntry(k).catch(() => {});
          return;
        }
        try {
          await writable.close();
          const m = await (await dir.getFileHandle(`${k}.done`, { create: true })).createWritable();
          await m.write(JSON.stringify({ size, sum: sum.value() }));
          await m.close();
        } catch (e) { fail(e); await dir.removeEntry(k).catch(() => {}); }
      } finally {
        release();
      }
    };
    w.abort = async () => {
      try {
        if (writable) await writable.abort().catch(() => {});
        await dir.removeEntry(k).catch(() => {});
      } finally {
        release();
      }
    };
    return w;
  }
  const parts = [];
  w.write = async (chunk) => {
    if (w.error) return;
    sum.update(chunk);
    parts.push(chunk.slice());
  };
  w.close = async () => {
    try {
      if (w.error || !globalThis.caches) return;
      const blob = new Blob(parts);
      if (blob.size !== size) return;
      const headers = { 'content-length': String(size), 'content-type': 'application/octet-stream', 'x-kiln-sum': String(sum.value()) };
      await (await caches.open(CACHE)).put(k, new Response(blob, { headers }));
    } catch (e) {
      fail(e);
    } finally {
      parts.length = 0;
      release();
    }
  };
  w.abort = async () => { parts.length = 0; release(); };
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
