// Kiln diffusion demo: text to image from a diffusers Stable-Diffusion folder
// (a URL or a folder picked from disk), generated in a worker on WebGPU by
// the kiln-webgpu package.
import { Kiln } from 'kiln-webgpu';
import { registerServiceWorker, progressText, errorText, deviceText } from '../common.js';

const $ = (id) => document.getElementById(id);
let dm = null;
let stop = null;
let loadedGuidance = null;
let loadedImg2img = false;
let source = null;
let label = '';

registerServiceWorker('../sw.js');

function setError(e) {
  $('error').textContent = errorText(e);
}

function setBusy(busy) {
  $('generate').disabled = busy || !source;
  $('stop').disabled = !busy;
  $('load').disabled = busy;
}

// The pipeline is compiled for with- or without-guidance runs (one or two
// samples per step): a change of side reloads it.
async function ensureLoaded(guided, img2img = false) {
  if (dm && loadedGuidance === guided && (loadedImg2img || !img2img)) return true;
  if (dm) { await dm.dispose(); dm = null; }
  $('status').textContent = `Loading ${label}…`;
  const t0 = performance.now();
  const opts = {
    guidance: guided,
    img2img,
    previews: true,
    onProgress: (p) => {
      $('status').textContent = progressText(p, label);
    },
  };
  try {
    dm = await Kiln.loadDiffusion(source, opts);
  } catch (e) {
    // Step previews need the folder's taesd/ (AutoencoderTiny); without it, none.
    if (!(e.code === 'INVALID_INPUT' && /taesd\//.test(e.message))) throw e;
    dm = await Kiln.loadDiffusion(source, { ...opts, previews: false });
  }
  loadedGuidance = guided;
  loadedImg2img = img2img;
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  $('status').textContent = `Ready: ${label} (${dm.width}×${dm.height}, loaded in ${secs} s${dm.previews ? ', TAESD previews' : ''})`;
  const a = dm.adapter;
  $('adapter').textContent = deviceText(a);
  return true;
}

async function load(src, name) {
  setError(null);
  source = src;
  label = name;
  setBusy(true);
  try {
    await ensureLoaded(Number($('guidance').value) > 1);
  } catch (e) {
    $('status').textContent = `Could not load ${label}.`;
    source = null;
    setError(e);
  } finally {
    setBusy(false);
  }
}

// A step's TAESD preview, scaled to the image's size.
function showPreview(img) {
  const c = $('image');
  c.width = dm.width;
  c.height = dm.height;
  const t = new OffscreenCanvas(img.width, img.height);
  t.getContext('2d').putImageData(img, 0, 0);
  c.getContext('2d').drawImage(t, 0, 0, c.width, c.height);
}

async function generate(ev) {
  ev?.preventDefault();
  if (!source) return;
  setError(null);
  const guidance = Number($('guidance').value);
  const req = {
    prompt: $('prompt').value,
    negativePrompt: $('negative').value,
    steps: Number($('steps').value),
    scheduler: $('scheduler').value,
    guidance,
    seed: Number($('seed').value),
  };
  const img2img = $('img2img').checked;
  stop = new AbortController();
  setBusy(true);
  $('progress').value = 0;
  try {
    await ensureLoaded(guidance > 1, img2img);
    if (img2img) {
      // The image shown, at the model's size.
      const c = $('image');
      const t = new OffscreenCanvas(dm.width, dm.height);
      t.getContext('2d').drawImage(c, 0, 0, dm.width, dm.height);
      req.initImage = t.getContext('2d').getImageData(0, 0, dm.width, dm.height);
      req.strength = Number($('strength').value);
    }
    $('stats').textContent = `Generating ${dm.width}×${dm.height}…`;
    const r = await dm.generate({
      ...req,
      signal: stop.signal,
      onStep: (p) => {
        $('progress').value = p.fraction;
        if (p.preview) showPreview(p.preview);
        $('stats').textContent = `Generating ${dm.width}×${dm.height}: step ${p.done} / ${p.total}`;
      },
    });
    const canvas = $('image');
    canvas.width = r.width;
    canvas.height = r.height;
    canvas.getContext('2d').putImageData(r.image, 0, 0);
    $('imageInfo').textContent = `${r.width}×${r.height} px`;
    $('save').disabled = false;
    const what = img2img ? `img2img at strength ${req.strength}, ` : '';
    $('stats').textContent = `${what}${req.steps} ${req.scheduler} steps, guidance ${guidance}, seed ${req.seed}: ${dm.lastStats.seconds.toFixed(1)} s`;
  } catch (e) {
    $('stats').textContent = e.code === 'ABORTED' ? 'Stopped.' : '';
    if (e.code !== 'ABORTED') setError(e);
  } finally {
    $('progress').value = 0;
    stop = null;
    setBusy(false);
  }
}

$('controls').addEventListener('submit', generate);
$('stop').addEventListener('click', () => stop?.abort('stopped'));
$('dice').addEventListener('click', () => { $('seed').value = Math.floor(Math.random() * 1e9); });
$('save').addEventListener('click', () => $('image').toBlob((b) => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(b);
  a.download = `kiln-s${$('seed').value}.png`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}, 'image/png'));
$('initFile').addEventListener('change', async () => {
  const f = $('initFile').files[0];
  if (!f) return;
  const bmp = await createImageBitmap(f);
  const c = $('image');
  c.width = dm?.width ?? bmp.width;
  c.height = dm?.height ?? bmp.height;
  c.getContext('2d').drawImage(bmp, 0, 0, c.width, c.height);
  $('imageInfo').textContent = `${f.name} at ${c.width}×${c.height} px`;
  $('img2img').checked = true;
});
$('load').addEventListener('click', () => {
  const u = $('url').value.trim();
  load(u.endsWith('/') ? u : `${u}/`, u);
});
$('folder').addEventListener('change', () => {
  const files = [...$('folder').files];
  if (files.length) load(files, files[0].webkitRelativePath.split('/')[0] || 'folder');
});

const params = new URLSearchParams(location.search);
for (const k of ['prompt', 'negative', 'steps', 'scheduler', 'guidance', 'seed', 'strength']) if (params.has(k)) $(k).value = params.get(k);
if (params.has('model')) {
  $('url').value = params.get('model');
  await load(params.get('model'), params.get('model'));
  if (params.has('generate') && source) generate();
}
