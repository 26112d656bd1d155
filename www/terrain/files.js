// Heightmap files, the same bytes `kiln diffuse` writes: `.npy` float32
// metres (`--heights`; np.load reads it, `--from` varies it) and a 16-bit
// grayscale PNG (`--heightmap`: 0 … 65535 = 0 … 22.17 m).

/** The top of the heights' range in metres (kiln's HEIGHT_RANGE). */
export const HEIGHT_RANGE = 22.16864013671875;

/** A NumPy .npy v1.0 file of float32 `[h, w]`, byte-identical to np.save. */
export function npyF32(data, h, w) {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${h}, ${w}), }`;
  const growth = Math.max(0, 21 - String(h).length);
  const unpadded = 6 + 4 + dict.length + growth + 1;
  const header = dict + ' '.repeat(growth + 64 - (unpadded % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.length * 4);
  out.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return new Blob([out], { type: 'application/octet-stream' });
}

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A 16-bit grayscale PNG of heights in metres (0 … HEIGHT_RANGE → 0 … 65535). */
export async function png16(heights, h, w) {
  const rows = new Uint8Array(h * (1 + 2 * w)); // each row: filter 0, then big-endian samples
  const view = new DataView(rows.buffer);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // The quotient in f32 as kiln does, so the levels are the CLI's exactly.
      const level = Math.round(Math.min(Math.max(Math.fround(heights[y * w + x] / HEIGHT_RANGE), 0), 1) * 65535);
      view.setUint16(y * (1 + 2 * w) + 1 + 2 * x, level);
    }
  }
  // CompressionStream('deflate') is the zlib format PNG's IDAT wants.
  const idat = new Uint8Array(await new Response(new Blob([rows]).stream().pipeThrough(new CompressionStream('deflate'))).arrayBuffer());
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, w);
  new DataView(ihdr.buffer).setUint32(4, h);
  ihdr.set([16, 0, 0, 0, 0], 8); // bit depth 16, grayscale, deflate, filter 0, no interlace
  const sig = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Blob([sig, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array())], { type: 'image/png' });
}

/** Saves a Blob under `name` (the browser's download). */
export function save(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
