// The CPU backend's worker threads in the browser (the threaded build,
// kiln_wasm_mt.js): the Rust pool (crate/src/backend/cpu_fast/pool.rs) calls
// `spawnPoolWorker` once per extra thread; each Web Worker instantiates the
// same module on the same shared memory and runs the pool's worker loop until
// the engine is freed. Workers start asynchronously: the engine reports
// `threadsReady()` once all of them run (core.js waits for it).
export function spawnPoolWorker(module, memory, state) {
  const w = new Worker(new URL('./pool_worker.js', import.meta.url), { type: 'module', name: 'kiln-cpu' });
  w.onerror = (e) => console.error(`kiln: a CPU worker thread failed: ${e.message}`);
  w.postMessage({ module, memory, state });
}
