//! Tiled VAE decoding, as diffusers' `AutoencoderKL.enable_tiling()` does
//! it, so that large images decode within the memory of a tile: the latents
//! are cut into tiles of `sample_size / scale` pixels (64 for SD's VAEs)
//! starting every 3/4 tile, each tile is decoded alone (tiles at the right
//! and bottom edges are smaller), and each decoded tile is blended linearly
//! over a quarter of `sample_size` with the tile above and the tile to its
//! left, then cropped to 3/4 of `sample_size` and placed. Tiles are blended
//! in row-major order and in place, so a tile's neighbours are already
//! blended when it reads them — diffusers' order, which the output depends
//! on (checked against diffusers in tests/sd_tiling.rs).
//!
//! The geometry and the blending are host work on NCHW tensors; the
//! decoder runs one program per distinct tile shape (`vae::build_tiled`).

use crate::error::{KilnError, Result};

/// The tile geometry of a VAE (diffusers' `tile_sample_min_size`,
/// `tile_latent_min_size` and `tile_overlap_factor` = 0.25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaeTiling {
    /// Image pixels per latent pixel.
    pub scale: usize,
    /// A full tile, in latent pixels.
    pub tile_latent: usize,
    /// A full tile, in image pixels (the config's `sample_size`).
    pub tile_sample: usize,
    /// Latent pixels from one tile's start to the next.
    pub step: usize,
    /// Image rows / columns blended with the neighbour.
    pub blend: usize,
    /// Image rows / columns each tile keeps.
    pub keep: usize,
}

/// One tile: its first latent row and column and its size in latents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub y0: usize,
    pub x0: usize,
    pub h: usize,
    pub w: usize,
}

impl VaeTiling {
    /// The geometry for a VAE with `sample_size` and `scale` (a typed error
    /// when the tiles would not advance).
    pub fn new(sample_size: usize, scale: usize) -> Result<VaeTiling> {
        let tile_latent = sample_size / scale.max(1);
        // int(tile_latent · (1 − 0.25)) and int(sample · 0.25), as diffusers.
        let step = tile_latent * 3 / 4;
        let blend = sample_size / 4;
        if step == 0 {
            return Err(KilnError::BadInput {
                name: "vae".into(),
                detail: format!(
                    "sample_size {sample_size} with scale {scale} makes latent tiles of \
                     {tile_latent} pixels, too small to tile"
                ),
            });
        }
        Ok(VaeTiling {
            scale,
            tile_latent,
            tile_sample: sample_size,
            step,
            blend,
            keep: sample_size - blend,
        })
    }

    /// Whether latents of `h × w` are decoded in tiles (either side larger
    /// than a tile).
    pub fn applies(&self, (h, w): (usize, usize)) -> bool {
        h > self.tile_latent || w > self.tile_latent
    }

    /// The tiles of `h × w` latents, row by row.
    pub fn tiles(&self, (h, w): (usize, usize)) -> Vec<Tile> {
        let mut out = Vec::new();
        for y0 in (0..h).step_by(self.step) {
            for x0 in (0..w).step_by(self.step) {
                out.push(Tile {
                    y0,
                    x0,
                    h: self.tile_latent.min(h - y0),
                    w: self.tile_latent.min(w - x0),
                });
            }
        }
        out
    }

    /// The distinct tile sizes of `h × w` latents, in first-use order.
    pub fn shapes(&self, size: (usize, usize)) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for t in self.tiles(size) {
            if !out.contains(&(t.h, t.w)) {
                out.push((t.h, t.w));
            }
        }
        out
    }

    /// Tile `t` of NCHW latents `z [b, c, h, w]`, NCHW.
    pub fn cut(z: &[f32], (b, c): (usize, usize), (h, w): (usize, usize), t: &Tile) -> Vec<f32> {
        let mut out = Vec::with_capacity(b * c * t.h * t.w);
        for plane in 0..b * c {
            for y in t.y0..t.y0 + t.h {
                let row = (plane * h + y) * w;
                out.extend_from_slice(&z[row + t.x0..row + t.x0 + t.w]);
            }
        }
        out
    }

    /// The image of `h × w` latents from its decoded tiles (in `tiles`
    /// order, each NCHW `[b, c, t.h·scale, t.w·scale]`): blended and cropped
    /// as diffusers' `tiled_decode`. NCHW `[b, c, h·scale, w·scale]`.
    pub fn assemble(
        &self,
        mut decoded: Vec<Vec<f32>>,
        (b, c): (usize, usize),
        size: (usize, usize),
    ) -> Result<Vec<f32>> {
        let tiles = self.tiles(size);
        let s = self.scale;
        if decoded.len() != tiles.len()
            || decoded
                .iter()
                .zip(&tiles)
                .any(|(d, t)| d.len() != b * c * t.h * s * t.w * s)
        {
            return Err(KilnError::BadInput {
                name: "vae".into(),
                detail: "decoded tiles do not match the tiling".into(),
            });
        }
        let cols = size.1.div_ceil(self.step);
        let planes = b * c;
        // The kept rows and columns must tile the image exactly (they do
        // whenever 3/4 of a tile is whole in both latents and pixels).
        let kept = |n: usize| -> usize {
            (0..n)
                .step_by(self.step)
                .map(|i| (self.tile_latent.min(n - i) * s).min(self.keep))
                .sum()
        };
        if kept(size.0) != size.0 * s || kept(size.1) != size.1 * s {
            return Err(KilnError::BadInput {
                name: "vae".into(),
                detail: format!(
                    "tiles of {} latents every {} do not cover {}×{} latents",
                    self.tile_latent, self.step, size.0, size.1
                ),
            });
        }
        for (k, t) in tiles.iter().enumerate() {
            let (th, tw) = (t.h * s, t.w * s);
            if k >= cols {
                // Blend with the tile above (same width).
                let above = &tiles[k - cols];
                let ah = above.h * s;
                let e = ah.min(th).min(self.blend);
                let (head, tail) = decoded.split_at_mut(k);
                let (a, cur) = (&head[k - cols], &mut tail[0]);
                for p in 0..planes {
                    for y in 0..e {
                        let (wa, wb) = weights(y, e);
                        let ra = (p * ah + ah - e + y) * tw;
                        let rb = (p * th + y) * tw;
                        for x in 0..tw {
                            cur[rb + x] = a[ra + x] * wa + cur[rb + x] * wb;
                        }
                    }
                }
            }
            if k % cols > 0 {
                // Blend with the tile to the left (same height).
                let aw = tiles[k - 1].w * s;
                let e = aw.min(tw).min(self.blend);
                let (head, tail) = decoded.split_at_mut(k);
                let (a, cur) = (&head[k - 1], &mut tail[0]);
                for p in 0..planes {
                    for y in 0..th {
                        let (ra, rb) = ((p * th + y) * aw, (p * th + y) * tw);
                        for x in 0..e {
                            let (wa, wb) = weights(x, e);
                            cur[rb + x] = a[ra + aw - e + x] * wa + cur[rb + x] * wb;
                        }
                    }
                }
            }
        }
        // Crop each tile to `keep` rows and columns and place it.
        let (oh, ow) = (size.0 * s, size.1 * s);
        let mut out = vec![0f32; planes * oh * ow];
        let mut oy = 0;
        for row in tiles.chunks(cols).zip(decoded.chunks(cols)) {
            let (row_tiles, row_data) = row;
            let kh = (row_tiles[0].h * s).min(self.keep);
            let mut ox = 0;
            for (t, d) in row_tiles.iter().zip(row_data) {
                let (th, tw) = (t.h * s, t.w * s);
                let kw = tw.min(self.keep);
                for p in 0..planes {
                    for y in 0..kh {
                        let src = (p * th + y) * tw;
                        let dst = (p * oh + oy + y) * ow + ox;
                        out[dst..dst + kw].copy_from_slice(&d[src..src + kw]);
                    }
                }
                ox += kw;
            }
            oy += kh;
        }
        Ok(out)
    }
}

/// Blend weights at offset `i` of `e`: (1 − i/e, i/e), computed in f64 and
/// applied in f32, as torch applies Python floats to f32 tensors.
fn weights(i: usize, e: usize) -> (f32, f32) {
    let f = i as f64 / e as f64;
    ((1.0 - f) as f32, f as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_diffusers() {
        // SD's VAE: sample 512, scale 8 → 64-latent tiles every 48, blend 128, keep 384.
        let t = VaeTiling::new(512, 8).unwrap();
        assert_eq!((t.tile_latent, t.step, t.blend, t.keep), (64, 48, 128, 384));
        assert!(!t.applies((64, 64)));
        assert!(t.applies((64, 65)));
        let tiles = t.tiles((96, 120));
        assert_eq!(tiles.len(), 2 * 3);
        assert_eq!(
            tiles[5],
            Tile {
                y0: 48,
                x0: 96,
                h: 48,
                w: 24
            }
        );
        assert_eq!(
            t.shapes((96, 120)),
            vec![(64, 64), (64, 24), (48, 64), (48, 24)]
        );
        assert!(VaeTiling::new(4, 4).is_err());
    }

    #[test]
    fn cut_and_assemble_cover_the_image() {
        // With tiles that are the identity of their latents (scale 1), the
        // blend of equal overlapping values is the value itself, so the
        // assembled image is the latents.
        let t = VaeTiling::new(8, 1).unwrap();
        let (b, c, h, w) = (2, 3, 13, 11);
        let z: Vec<f32> = (0..b * c * h * w).map(|i| i as f32 * 0.5 - 7.0).collect();
        let parts: Vec<Vec<f32>> = t
            .tiles((h, w))
            .iter()
            .map(|tile| VaeTiling::cut(&z, (b, c), (h, w), tile))
            .collect();
        let img = t.assemble(parts, (b, c), (h, w)).unwrap();
        for (i, (a, e)) in img.iter().zip(&z).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                "element {i}: {a} vs {e}"
            );
        }
        assert!(t.assemble(vec![vec![0.0]], (b, c), (h, w)).is_err());
    }
}
