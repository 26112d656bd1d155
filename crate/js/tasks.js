// Imported by the wasm glue (wasm-bindgen copies it to snippets/): a promise that
// resolves on the next macrotask. The CPU backend's reads await it between
// tokens and training steps, so the worker running them handles its
// messages (an abort) meanwhile. A MessageChannel, not setTimeout(0), which
// browsers clamp to 4 ms when nested.
export function kilnNextTask() {
  return new Promise((resolve) => {
    const c = new MessageChannel();
    c.port1.onmessage = () => {
      c.port1.close();
      resolve();
    };
    c.port2.postMessage(0);
  });
}
