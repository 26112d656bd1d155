// Kiln terrain demo: heightmaps from a one-step diffusion UNet, generated in
// a worker on WebGPU by the kiln-webgpu package, drawn as a shaded relief
// and as a three.js mesh.
import { Kiln } from 'kiln-webgpu';
import { registerServiceWorker, progressText, errorText, deviceText } from '../common.js';
import { createView } from './view3d.js';
import { npyF32, png16, save } from './files.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_MODEL = new URL('../../models/terrain_consistency_unet_difficulty100.onnx', location.href).pathname;
let dm = null;
let stop = null;
let last = null; // { heights, width, height, difficulty, seed }
let view = null;
// The device choice as Kiln's adapterPreference (automatic: none, so Kiln picks).
const PREFERENCE = { gpu: 'webgpu', cpu: 'cpu' };

registerServiceWorker('../sw.js');

function setError(e) {
  $('error').textContent = errorText(e);
}

function setBusy(busy) {
  $('generate').disabled = busy || !dm;
  $('stop').disabled = !busy;
  $('load').disabled = busy;
  for (const id of ['savePng', 'saveNpy', 'saveHeightmap']) $(id).disabled = busy || !last;
}

let lastSource = null;
let lastLabel = '';

async function load(source, label) {
  [lastSource, lastLabel] = [source, label];
  setError(null);
  if (dm) { await dm.dispose(); dm = null; }
  setBusy(true);
  $('status').textContent = `Loading ${label}…`;
  const t0 = performance.now();
  try {
    dm = await Kiln.loadDiffusion(source, {
      ...(PREFERENCE[$('device').value] ? { adapterPreference: PREFERENCE[$('device').value] } : {}),
      onProgress: (p) => {
        $('progress').value = p.fraction;
        $('status').textContent = progressText(p, label);
      },
    });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const where = dm.fromCache ? 'from the browser cache' : 'from the network';
    $('status').textContent = `Ready: ${label} (${where}, ${secs} s)${dm.cacheError ? ` — not cached: ${dm.cacheError.message}` : ''}`;
    const a = dm.adapter;
    $('adapter').textContent = deviceText(a);
  } catch (e) {
    $('status').textContent = `Could not load ${label}.`;
    setError(e);
  } finally {
    $('progress').value = 0;
    setBusy(false);
  }
}

async function generate(ev) {
  ev?.preventDefault();
  if (!dm) return;
  setError(null);
  const size = Number($('size').value);
  const req = { difficulty: Number($('difficulty').value), seed: Number($('seed').value), width: size, height: size };
  stop = new AbortController();
  setBusy(true);
  $('progress').value = 0;
  $('stats').textContent = `Generating ${size}×${size}…`;
  try {
    const r = await dm.generate({
      ...req,
      signal: stop.signal,
      onProgress: (p) => {
        $('progress').value = p.fraction;
        $('stats').textContent = `Generating ${size}×${size}: tile ${p.done} / ${p.total}`;
      },
    });
    last = { ...req, heights: r.heights, width: r.width, height: r.height };
    const canvas = $('relief');
    canvas.width = r.width;
    canvas.height = r.height;
    canvas.getContext('2d').putImageData(r.image, 0, 0);
    let top = 0;
    for (const v of r.heights) top = Math.max(top, v);
    $('reliefInfo').textContent = `${r.width}×${r.height} px, relief ${top.toFixed(2)} m`;
    view ??= createView($('mesh'));
    view.setExaggeration(Number($('exaggeration').value));
    view.show(r.heights, r.width, r.height, canvas);
    $('stats').textContent = `${r.width}×${r.height}, difficulty ${req.difficulty}, seed ${req.seed}: ${dm.lastStats.seconds.toFixed(1)} s`;
  } catch (e) {
    $('stats').textContent = e.code === 'ABORTED' ? 'Stopped.' : '';
    if (e.code !== 'ABORTED') setError(e);
  } finally {
    $('progress').value = 0;
    stop = null;
    setBusy(false);
  }
}

const baseName = () => `terrain-d${last.difficulty}-s${last.seed}-${last.width}x${last.height}`;
$('controls').addEventListener('submit', generate);
$('stop').addEventListener('click', () => stop?.abort('stopped'));
$('dice').addEventListener('click', () => { $('seed').value = Math.floor(Math.random() * 1e9); });
$('difficulty').addEventListener('input', () => { $('difficultyOut').value = $('difficulty').value; });
$('exaggeration').addEventListener('input', () => view?.setExaggeration(Number($('exaggeration').value)));
$('savePng').addEventListener('click', () => $('relief').toBlob((b) => save(b, `${baseName()}.png`), 'image/png'));
$('saveNpy').addEventListener('click', () => save(npyF32(last.heights, last.height, last.width), `${baseName()}.npy`));
$('saveHeightmap').addEventListener('click', async () => save(await png16(last.heights, last.height, last.width), `${baseName()}-heightmap16.png`));
$('load').addEventListener('click', () => load($('url').value, $('url').value.split('/').pop()));
// The same model (URL or file) again, on the other device.
$('device').addEventListener('change', () => { if (lastSource) load(lastSource, lastLabel); });
$('file').addEventListener('change', () => {
  const f = $('file').files[0];
  if (f) load(f, f.name);
});
$('forget').addEventListener('click', async () => {
  await Kiln.deleteModelInCache($('url').value);
  $('status').textContent = 'Deleted the cached copy.';
});

const params = new URLSearchParams(location.search);
$('url').value = params.get('model') || DEFAULT_MODEL;
for (const k of ['difficulty', 'seed', 'size', 'device']) if (params.has(k)) $(k).value = params.get(k);
$('difficultyOut').value = $('difficulty').value;
await load($('url').value, $('url').value.split('/').pop());
if (params.has('generate') && dm) generate();
