//! Data movement: cast, transpose, concat, and writing new K/V rows into a
//! cache (`write_cache`). Kernels: `shaders/copy.wgsl`.
//!
//! * `cast(x, to)`: f32/f16/bf16 → f32, or f32 → f16/bf16 (round to nearest
//!   even); same shape. (Plain copy is `cast` to the same f32.)
//! * `transpose(x)`: swaps the last two dimensions, f32 (any leading batch).
//! * `concat(a, b, axis)`: f32, shapes equal except along `axis`.
//! * `write_cache(cache, src, pos)`: `cache [hkv, cap, d]` (f32/f16 state) gets
//!   `cache[h, pos+i, :] = src[i, h, :]` for `src [t, hkv, d]` f32, in place.

use super::{
    Backward, Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, sym, u,
};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, Sym, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::quant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cast(pub DType);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transpose;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteCache(pub Sym);

/// A view with another shape of the same number of elements (no copy on GPU
/// backends: the output aliases the input's storage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape(pub Vec<usize>);

/// Rows `start..start + count` of `x [rows, cols]` (f32), copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceRows {
    pub start: usize,
    pub count: usize,
}

const HALVES: [DType; 2] = [DType::F16, DType::BF16];

/// The same region with its size-1 dimensions dropped and each dimension
/// that is contiguous with the next (in source and destination) merged into
/// it, padded back to 4-D at the outer end: concat's pieces become
/// [rows, row length] and whole copies one run, so the innermost dimension
/// is as long as it can be.
fn merge_dims(
    dims: [usize; 4],
    ss: [usize; 4],
    ds: [usize; 4],
) -> ([usize; 4], [usize; 4], [usize; 4]) {
    let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(4);
    for i in (0..4).rev().filter(|&i| dims[i] != 1) {
        match runs.last_mut() {
            Some(r) if ss[i] == r.0 * r.1 && ds[i] == r.0 * r.2 => r.0 *= dims[i],
            _ => runs.push((dims[i], ss[i], ds[i])),
        }
    }
    let (mut d, mut s, mut t) = ([1; 4], [0; 4], [0; 4]);
    for (j, r) in runs.iter().enumerate().take(4) {
        (d[3 - j], s[3 - j], t[3 - j]) = *r;
    }
    (d, s, t)
}

/// A strided-copy dispatch: a 4-D region with source and destination strides.
fn strided(
    src_dtype: DType,
    dims: [usize; 4],
    ss: [usize; 4],
    ds: [usize; 4],
    offs: (usize, usize),
    input: usize,
    ctx: &PlanCtx,
) -> Result<Dispatch> {
    let (dims, ss, ds) = merge_dims(dims, ss, ds);
    let n: usize = dims.iter().product();
    // Four consecutive elements per invocation along a unit-stride innermost
    // dimension that holds a multiple of 4.
    let vec4 = dims[3].is_multiple_of(4) && ss[3] == 1 && ds[3] == 1;
    let mut params = vec![u(n)?, 0, 0, 0];
    for v in dims.iter().chain(&ss).chain(&ds) {
        params.push(u(*v)?);
    }
    params.extend([u(offs.0)?, u(offs.1)?]);
    let mut defines = vec!["STRIDED"];
    if vec4 {
        defines.push("VEC4");
        // Whole vectors when every start is a multiple of 4 (f32 sources).
        let starts = ss[..3].iter().chain(&ds[..3]).chain([&offs.0, &offs.1]);
        if src_dtype == DType::F32 && starts.into_iter().all(|v| v.is_multiple_of(4)) {
            defines.push("ALIGNED");
        }
    }
    match src_dtype {
        DType::F16 => defines.push("SRC_F16"),
        DType::BF16 => defines.push("SRC_BF16"),
        _ => {}
    }
    Ok(Dispatch {
        shader: "copy.wgsl",
        entry: "strided",
        defines,
        bindings: vec![Bind::Input(input, 0), Bind::Output],
        params,
        groups: grid(n.div_ceil(if vec4 { 1024 } else { 256 }), ctx.caps)?,
    })
}

impl Op for Cast {
    fn name(&self) -> &'static str {
        "cast"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32, DType::F16, DType::BF16])?;
        if x.dtype != DType::F32 && self.0 != DType::F32
            || !matches!(self.0, DType::F32 | DType::F16 | DType::BF16)
        {
            return Err(KilnError::UnsupportedDType {
                op: self.name(),
                operand: "target (f32 ↔ f16/bf16 only)",
                dtype: self.0,
            });
        }
        Ok((x.shape.clone(), self.0))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        out.data = quant::quantize(self.0, &inputs[0].to_f32()?)?;
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let n = x.numel();
        if HALVES.contains(&self.0) {
            let mut defines = vec!["TO_HALF"];
            if self.0 == DType::BF16 {
                defines.push("BF16");
            }
            return Ok(vec![Dispatch {
                shader: "copy.wgsl",
                entry: "to_half",
                defines,
                bindings: vec![Bind::Input(0, 0), Bind::Output],
                params: vec![u(n)?],
                groups: grid(n.div_ceil(2).div_ceil(256), ctx.caps)?,
            }]);
        }
        Ok(vec![strided(
            x.dtype,
            [1, 1, 1, n],
            [0, 0, 0, 1],
            [0, 0, 0, 1],
            (0, 0),
            0,
            ctx,
        )?])
    }
}

impl Op for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        if x.shape.len() < 2 {
            return Err(shape_err(
                self.name(),
                format!("x {:?} needs two dimensions", x.shape),
            ));
        }
        let mut s = x.shape.clone();
        let r = s.len();
        s.swap(r - 1, r - 2);
        Ok((s, DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let r = inputs[0].shape.len();
        let (a, b) = (inputs[0].shape[r - 2], inputs[0].shape[r - 1]);
        let mut y = vec![0f32; x.len()];
        for (bi, mat) in x.chunks(a * b).enumerate() {
            for i in 0..a {
                for j in 0..b {
                    y[bi * a * b + j * a + i] = mat[i * b + j];
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let r = x.shape.len();
        let (a, b) = (x.shape[r - 2], x.shape[r - 1]);
        let batch = x.numel() / (a * b);
        // Iterate in destination order [batch, b, a].
        let dims = [1, batch, b, a];
        let ss = [0, a * b, 1, b];
        let ds = [0, a * b, a, 1];
        Ok(vec![strided(DType::F32, dims, ss, ds, (0, 0), 0, ctx)?])
    }
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (a, b) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "a", a, &[DType::F32])?;
        require_dtype(self.name(), "b", b, &[DType::F32])?;
        let ax = self.0;
        let ok = a.shape.len() == b.shape.len()
            && ax < a.shape.len()
            && a.shape
                .iter()
                .zip(&b.shape)
                .enumerate()
                .all(|(i, (x, y))| i == ax || x == y);
        if !ok {
            return Err(shape_err(
                self.name(),
                format!(
                    "a {:?} and b {:?} must match except along axis {ax}",
                    a.shape, b.shape
                ),
            ));
        }
        let mut s = a.shape.clone();
        s[ax] += b.shape[ax];
        Ok((s, DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let (a, b) = (inputs[0].to_f32()?, inputs[1].to_f32()?);
        let ax = self.0;
        let inner: usize = inputs[0].shape[ax + 1..].iter().product();
        let (ca, cb) = (inputs[0].shape[ax] * inner, inputs[1].shape[ax] * inner);
        let mut y = Vec::with_capacity(a.len() + b.len());
        for (ra, rb) in a.chunks(ca).zip(b.chunks(cb)) {
            y.extend_from_slice(ra);
            y.extend_from_slice(rb);
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let ax = self.0;
        let s = &ctx.output.shape;
        let outer: usize = s[..ax].iter().product();
        let inner: usize = s[ax + 1..].iter().product();
        let mut off = 0;
        let mut out = Vec::new();
        for (i, t) in ctx.inputs.iter().enumerate() {
            let mid = t.shape[ax];
            let dims = [1, outer, mid, inner];
            let ss = [0, mid * inner, inner, 1];
            let ds = [0, s[ax] * inner, inner, 1];
            out.push(strided(DType::F32, dims, ss, ds, (0, off * inner), i, ctx)?);
            off += mid;
        }
        Ok(out)
    }
}

impl Op for WriteCache {
    fn name(&self) -> &'static str {
        "write_cache"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (cache, src) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "cache", cache, &[DType::F32, DType::F16])?;
        require_dtype(self.name(), "src", src, &[DType::F32])?;
        let ok = cache.shape.len() == 3
            && src.shape.len() == 3
            && src.shape[1] == cache.shape[0]
            && src.shape[2] == cache.shape[2]
            && (cache.dtype == DType::F32 || cache.shape[2] % 2 == 0);
        if !ok {
            return Err(shape_err(
                self.name(),
                format!(
                    "src {:?} must be [t, hkv, d] for cache {:?} [hkv, cap, d] (d even for f16)",
                    src.shape, cache.shape
                ),
            ));
        }
        Ok((cache.shape.clone(), cache.dtype))
    }

    fn in_place(&self) -> Option<usize> {
        Some(0)
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.0]
    }

    fn check_syms(&self, inputs: &[&TensorInfo], syms: &[u32], names: &[String]) -> Result<()> {
        let p = sym(syms, self.0)?;
        let (cap, t) = (inputs[0].shape[1], inputs[1].shape[0]);
        if p as usize + t > cap {
            return Err(KilnError::SymbolRange {
                name: names[self.0.0 as usize].clone(),
                value: p,
                detail: format!("writing {t} rows from it overflows the cache of {cap} positions"),
            });
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let src = inputs[1].to_f32()?;
        let (t, h, d) = (inputs[1].shape[0], inputs[1].shape[1], inputs[1].shape[2]);
        let cap = out.shape[1];
        let p0 = sym(syms, self.0)? as usize;
        let es = out.dtype.block_bytes();
        for ti in 0..t {
            for hi in 0..h {
                let row = quant::quantize(out.dtype, &src[(ti * h + hi) * d..][..d])?;
                let o = (hi * cap + p0 + ti) * d * es;
                out.data[o..o + row.len()].copy_from_slice(&row);
            }
        }
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let src = ctx.inputs[1];
        let (t, h, d) = (src.shape[0], src.shape[1], src.shape[2]);
        Ok(vec![cache_dispatch(ctx, self.0, t, h * d, 0)?])
    }
}

/// The write_cache kernel: `t` rows of the cache's `hkv·d` values, read from
/// rows of `ld` values starting at column `col0` of the source.
fn cache_dispatch(ctx: &PlanCtx, pos: Sym, t: usize, ld: usize, col0: usize) -> Result<Dispatch> {
    let cache = ctx.inputs[0];
    let (h, d) = (cache.shape[0], cache.shape[2]);
    let n = t * h * d;
    let f16 = cache.dtype == DType::F16;
    let threads = if f16 { n / 2 } else { n };
    let mut defines = vec!["CACHE"];
    if f16 {
        defines.push("DST_F16");
    }
    Ok(Dispatch {
        shader: "copy.wgsl",
        entry: "write_cache",
        defines,
        bindings: vec![Bind::Input(1, 0), Bind::Output, Bind::Syms],
        params: vec![
            u(t)?,
            u(h)?,
            u(d)?,
            u(cache.shape[1])?,
            pos.0,
            u(col0)?,
            u(ld)?,
        ],
        groups: grid(threads.div_ceil(256), ctx.caps)?,
    })
}

/// `write_cache` from a window of `src [t, ld]`: the cache's `hkv·d` values
/// of each row start at column `col0` (the K or V part of a fused Q/K/V
/// projection's output), read in place by the same kernel. With `rope`, the
/// heads are roped on the way (K: one dispatch instead of RoPE plus a cache
/// write; `shaders/rope.wgsl` `rope_cache`), optionally with a third input,
/// the frequency divisors `[n_rot/2]`.
///
/// `deferred`: on GPUs whose caps say `kv_in_attention` the node dispatches
/// nothing and the attention node that reads this cache next does the write
/// (`Attention::new_kv`; only [`Graph::attention_new_kv`] builds such a
/// pair). Elsewhere (the CPU backends, or the caps off) it writes as usual,
/// so every backend's cache and attention output agree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteCacheWindow {
    pub pos: Sym,
    pub col0: usize,
    pub rope: Option<super::rope::Rope>,
    pub deferred: bool,
}

impl WriteCacheWindow {
    /// The `[t, hkv, d]` view of the window that [`WriteCache`] checks.
    fn view(&self, cache: &TensorInfo, src: &TensorInfo) -> Result<TensorInfo> {
        let (hkv, d) = (cache.shape.first(), cache.shape.get(2));
        match (&src.shape[..], hkv, d) {
            ([t, ld], Some(&h), Some(&d)) if self.col0 + h * d <= *ld => Ok(TensorInfo {
                shape: vec![*t, h, d],
                ..src.clone()
            }),
            _ => Err(shape_err(
                "write_cache_window",
                format!(
                    "src {:?} must be [t, columns] holding cache {:?}'s heads from column {}",
                    src.shape, cache.shape, self.col0
                ),
            )),
        }
    }
}

impl Op for WriteCacheWindow {
    fn name(&self) -> &'static str {
        "write_cache_window"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let view = self.view(inputs[0], inputs[1])?;
        match &self.rope {
            None => arity(self.name(), inputs, &[2])?,
            Some(r) => {
                arity(self.name(), inputs, &[2, 3])?;
                if r.pos != self.pos || r.period != 0 {
                    return Err(KilnError::BadParam {
                        op: self.name(),
                        detail: "RoPE must use the cache position (and no period)".into(),
                    });
                }
                let mut ins = vec![&view];
                ins.extend(inputs.get(2).copied());
                r.infer(&ins)?;
            }
        }
        WriteCache(self.pos).infer(&[inputs[0], &view])
    }

    fn in_place(&self) -> Option<usize> {
        Some(0)
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.pos]
    }

    fn check_syms(&self, inputs: &[&TensorInfo], syms: &[u32], names: &[String]) -> Result<()> {
        let view = self.view(inputs[0], inputs[1])?;
        WriteCache(self.pos).check_syms(&[inputs[0], &view], syms, names)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let (h, d) = (out.shape[0], out.shape[2]);
        let mut win = super::rope::window(inputs[1], self.col0, h, d)?;
        if let Some(r) = &self.rope {
            let mut ins = vec![&win];
            ins.extend(inputs.get(2).copied());
            let mut roped = HostTensor::zeros(&win.shape, DType::F32)?;
            r.cpu(&ins, &mut roped, syms)?;
            win = roped;
        }
        WriteCache(self.pos).cpu(&[inputs[0], &win], out, syms)
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let src = ctx.inputs[1];
        if self.deferred && ctx.caps.kv_in_attention {
            return Ok(vec![]);
        }
        if let Some(r) = &self.rope {
            return Ok(vec![r.cache_dispatch(
                ctx,
                src.shape[0],
                self.col0,
                src.shape[1],
            )?]);
        }
        Ok(vec![cache_dispatch(
            ctx,
            self.pos,
            src.shape[0],
            src.shape[1],
            self.col0,
        )?])
    }
}

impl Op for SliceRows {
    fn name(&self) -> &'static str {
        "slice_rows"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        if x.shape.len() != 2 || self.count == 0 || self.start + self.count > x.shape[0] {
            return Err(shape_err(
                self.name(),
                format!(
                    "rows {}..{} of x {:?} (must be [rows, cols])",
                    self.start,
                    self.start + self.count,
                    x.shape
                ),
            ));
        }
        Ok((vec![self.count, x.shape[1]], DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let c = inputs[0].shape[1];
        put_f32(out, &x[self.start * c..(self.start + self.count) * c]);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let c = ctx.inputs[0].shape[1];
        let dims = [1, 1, self.count, c];
        let st = [0, 0, c, 1];
        Ok(vec![strided(
            DType::F32,
            dims,
            st,
            st,
            (self.start * c, 0),
            0,
            ctx,
        )?])
    }
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let x = inputs[0];
        let n: usize = self.0.iter().product();
        if n != x.numel() || self.0.is_empty() || self.0.contains(&0) {
            return Err(shape_err(
                self.name(),
                format!("{:?} → {:?} changes the element count", x.shape, self.0),
            ));
        }
        crate::host::byte_size(&self.0, x.dtype)?;
        Ok((self.0.clone(), x.dtype))
    }

    fn alias_input(&self) -> Option<usize> {
        Some(0)
    }

    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        let shape = g.info(b.inputs[0])?.shape.clone();
        Ok(vec![b.grad(0, || g.reshape(b.dy, &shape))?])
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        out.data = inputs[0].data.clone();
        Ok(())
    }

    fn wgsl(&self, _ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        Ok(vec![])
    }
}

impl Graph {
    /// A view of `x` with another shape (same element count).
    /// Rows `start..start + count` of a `[rows, cols]` tensor.
    pub fn slice_rows(&mut self, x: TensorId, start: usize, count: usize) -> Result<TensorId> {
        self.push(SliceRows { start, count }, &[x])
    }

    pub fn reshape(&mut self, x: TensorId, shape: &[usize]) -> Result<TensorId> {
        self.push(Reshape(shape.to_vec()), &[x])
    }
    pub fn cast(&mut self, x: TensorId, to: DType) -> Result<TensorId> {
        self.push(Cast(to), &[x])
    }
    pub fn transpose(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Transpose, &[x])
    }
    pub fn concat(&mut self, a: TensorId, b: TensorId, axis: usize) -> Result<TensorId> {
        self.push(Concat(axis), &[a, b])
    }
    /// Writes columns `col0 .. col0 + hkv·d` of each row of `src [t, ld]` into
    /// `cache [hkv, cap, d]` at rows `pos..pos+t`.
    pub fn write_cache_window(
        &mut self,
        cache: TensorId,
        src: TensorId,
        pos: Sym,
        col0: usize,
    ) -> Result<TensorId> {
        self.push(
            WriteCacheWindow {
                pos,
                col0,
                rope: None,
                deferred: false,
            },
            &[cache, src],
        )
    }
    /// [`Graph::write_cache_window`] with RoPE applied on the way (the K
    /// heads of a fused Q/K/V output), with the frequency divisors when the
    /// model has them: one dispatch.
    pub fn write_cache_window_rope(
        &mut self,
        cache: TensorId,
        src: TensorId,
        col0: usize,
        rope: super::rope::Rope,
        factors: Option<TensorId>,
    ) -> Result<TensorId> {
        let ins: Vec<TensorId> = [cache, src].into_iter().chain(factors).collect();
        let op = WriteCacheWindow {
            pos: rope.pos,
            col0,
            rope: Some(rope),
            deferred: false,
        };
        self.push(op, &ins)
    }
    /// Writes `src [t, hkv, d]` into `cache [hkv, cap, d]` at rows `pos..pos+t`.
    pub fn write_cache(&mut self, cache: TensorId, src: TensorId, pos: Sym) -> Result<TensorId> {
        self.push(WriteCache(pos), &[cache, src])
    }
}
