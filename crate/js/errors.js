// Errors with a stable `code` (see index.d.ts for the list).
export class KilnError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'KilnError';
    this.code = code;
  }
}

/** Any thrown value as a KilnError (wasm errors carry their code already). */
export function toKilnError(e) {
  if (e instanceof KilnError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string' && e.message !== undefined) {
    return new KilnError(e.code, e.message);
  }
  if (e && e.name === 'AbortError') return new KilnError('ABORTED', 'aborted');
  if (e && e.name === 'QuotaExceededError') {
    return new KilnError('QUOTA_EXCEEDED', `browser storage quota exceeded: ${e.message}`);
  }
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
    return new KilnError('INTERNAL', `internal error in Kiln (please report): ${e.message}`);
  }
  return new KilnError('INTERNAL', String(e && e.message ? e.message : e));
}

export function aborted(signal) {
  return new KilnError('ABORTED', signal && signal.reason ? `aborted: ${signal.reason}` : 'aborted');
}
