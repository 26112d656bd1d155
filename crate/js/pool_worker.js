// One CPU worker thread of the threaded build (see pool.js): the module on
// the shared memory, then the pool's worker loop; returns when the pool is
// dropped, and the worker closes.
import { initSync, poolWorkerEntry } from './kiln_wasm_mt.js';

self.onmessage = ({ data }) => {
  self.onmessage = null;
  const wasm = initSync({ module: data.module, memory: data.memory });
  poolWorkerEntry(data.state);
  // Frees this thread's stack and thread-local storage in the shared memory.
  wasm.__wbindgen_thread_destroy?.();
  self.close();
};
