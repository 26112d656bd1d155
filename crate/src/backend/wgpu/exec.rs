//! Compiling a graph for wgpu and running it.
//!
//! `compile`: split weights that exceed one storage binding into row chunks;
//! give weights, inputs, state and outputs their own buffers and pool the
//! intermediates by liveness (a buffer is reused once its last reader ran);
//! plan every node's dispatches, build their pipelines and bind groups, and
//! write all uniform parameters once. `run`: write the symbol values, encode
//! every dispatch into one compute pass, submit once. Nothing is allocated
//! or read back per run.

use std::sync::Arc;

use super::{GpuContext, Pipeline, PipelineKey};
use crate::backend::{BackendError, Executable, check_write, readable};
use crate::graph::{Graph, TensorId, TensorKind};
use crate::host::HostTensor;
use crate::ops::{Bind, Chunk, GpuCaps, PlanCtx};

/// Bytes reserved per dispatch in the uniform parameter buffer.
const PARAM_SLOT: u64 = 256;

struct Slot {
    /// Buffer index per chunk.
    bufs: Vec<usize>,
    chunks: Vec<Chunk>,
    /// Bytes per row (of the first dimension) for chunked tensors.
    row_bytes: usize,
}

struct Step {
    /// "shader:entry" for profiles.
    label: String,
    pipeline: Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

/// Figures about a compiled graph (for `kiln` and benchmarks).
#[derive(Clone, Debug, Default)]
pub struct ExecStats {
    /// Dispatches per program.
    pub dispatches: Vec<usize>,
    pub buffers: usize,
    pub buffer_bytes: u64,
    pub pooled_intermediate_bytes: u64,
    pub unpooled_intermediate_bytes: u64,
}

pub struct WgpuExecutable {
    ctx: Arc<GpuContext>,
    graph: Graph,
    buffers: Vec<wgpu::Buffer>,
    slots: Vec<Slot>,
    syms_buf: wgpu::Buffer,
    steps: Vec<Vec<Step>>,
    pub stats: ExecStats,
    /// Buffer copies (src, dst, bytes) encoded at the start of the next run.
    pending_copies: Vec<(usize, usize, u64)>,
    reads: Vec<PendingRead>,
    next_ticket: usize,
    /// Dispatches per submit (0: the whole program in one): KILN_SUBMIT_EVERY.
    submit_every: usize,
    /// Poll (without waiting) before each run: KILN_POLL_EACH_RUN=0 turns it off.
    poll_each_run: bool,
    staging_free: Vec<wgpu::Buffer>,
}

fn align4(n: u64) -> u64 {
    n.div_ceil(4).max(1) * 4
}

impl Drop for WgpuExecutable {
    fn drop(&mut self) {
        self.ctx.release(self.stats.buffer_bytes);
    }
}

impl WgpuExecutable {
    pub fn new(
        ctx: Arc<GpuContext>,
        caps: GpuCaps,
        graph: &Graph,
    ) -> Result<WgpuExecutable, BackendError> {
        let graph = graph.clone();
        let mut stats = ExecStats::default();
        let chunking = plan_chunks(&graph, &caps)?;
        let device = &ctx.device;
        let mut buffers: Vec<wgpu::Buffer> = Vec::new();
        let new_buf = |buffers: &mut Vec<wgpu::Buffer>, size: u64, label: &str| -> usize {
            buffers.push(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: align4(size),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
            buffers.len() - 1
        };

        // Pinned roots get dedicated (possibly chunked) buffers; other
        // intermediates share pooled buffers by liveness (backend::pool).
        let n = graph.tensors.len();
        let pool = crate::backend::pool::plan(&graph);
        let mut slots: Vec<Option<Slot>> = (0..n).map(|_| None).collect();
        for (i, info) in graph.tensors.iter().enumerate() {
            if pool.root[i] != i || !pool.pinned[i] {
                continue;
            }
            let (chunks, row_bytes) = chunking[i].clone();
            let bufs = chunks
                .iter()
                .map(|c| new_buf(&mut buffers, (c.rows * row_bytes) as u64, &info.name))
                .collect();
            if info.kind == TensorKind::Intermediate {
                stats.unpooled_intermediate_bytes += info.bytes() as u64;
            }
            slots[i] = Some(Slot {
                bufs,
                chunks,
                row_bytes,
            });
        }
        let pool_bufs: Vec<usize> = pool
            .pool_bytes
            .iter()
            .map(|b| {
                stats.pooled_intermediate_bytes += b;
                new_buf(&mut buffers, *b, "pool")
            })
            .collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            let out = node.output.0;
            let bufs = match pool.pooled[out] {
                Some(b) => vec![pool_bufs[b]],
                None if pool.root[out] != out => {
                    let src = slots[pool.root[out]]
                        .as_ref()
                        .map(|s| s.bufs.clone())
                        .unwrap_or_default();
                    if src.len() != 1 {
                        return Err(BackendError::Unsupported {
                            op: graph.nodes[i].op.name().into(),
                            backend: "wgpu".into(),
                            reason: "a view of a tensor split across bindings".into(),
                        });
                    }
                    src
                }
                None => continue,
            };
            let (chunks, row_bytes) = chunking[out].clone();
            slots[out] = Some(Slot {
                bufs,
                chunks,
                row_bytes,
            });
        }
        let slots: Vec<Slot> = slots
            .into_iter()
            .map(|s| {
                s.unwrap_or(Slot {
                    bufs: vec![],
                    chunks: vec![],
                    row_bytes: 0,
                })
            })
            .collect();

        // Plan every node.
        let mut plans = Vec::new();
        let mut scratch: Vec<u64> = Vec::new();
        for (ni, node) in graph.nodes.iter().enumerate() {
            let program = (0..graph.program_count())
                .find(|p| graph.program(*p).is_ok_and(|r| r.contains(&ni)))
                .unwrap_or(0);
            let pctx = PlanCtx {
                inputs: node.inputs.iter().map(|t| &graph.tensors[t.0]).collect(),
                output: &graph.tensors[node.output.0],
                chunks: node
                    .inputs
                    .iter()
                    .map(|t| slots[t.0].chunks.clone())
                    .collect(),
                caps: &caps,
            };
            for d in node.op.wgsl(&pctx)? {
                for b in &d.bindings {
                    if let Bind::Scratch(s, bytes) = b {
                        let s = *s as usize;
                        if scratch.len() <= s {
                            scratch.resize(s + 1, 0);
                        }
                        scratch[s] = scratch[s].max(*bytes);
                    }
                }
                plans.push((program, node.clone(), d));
            }
        }
        let scratch_bufs: Vec<usize> = scratch
            .iter()
            .map(|b| new_buf(&mut buffers, *b, "scratch"))
            .collect();
        let syms_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("syms"),
            size: align4(4 * graph.syms.len() as u64),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: PARAM_SLOT * plans.len().max(1) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.take_error()?;

        let mut params = vec![0u8; (PARAM_SLOT as usize) * plans.len().max(1)];
        let mut steps: Vec<Vec<Step>> = (0..graph.program_count()).map(|_| Vec::new()).collect();
        let detail = crate::ops::env_switch("KILN_PROFILE_GRID") == Some(true);
        for (i, (program, node, d)) in plans.iter().enumerate() {
            if d.params.len() * 4 > PARAM_SLOT as usize {
                return Err(BackendError::Validation(format!(
                    "{} params exceed {PARAM_SLOT} bytes",
                    d.shader
                )));
            }
            for (j, w) in d.params.iter().enumerate() {
                let o = i * PARAM_SLOT as usize + 4 * j;
                params[o..o + 4].copy_from_slice(&w.to_le_bytes());
            }
            let mut defines = d.defines.clone();
            if caps.subgroups {
                defines.push("SUBGROUPS");
            }
            let key: PipelineKey = (
                d.shader,
                d.entry,
                defines,
                d.bindings.iter().map(|b| b.writable()).collect(),
            );
            let pipeline = ctx.pipeline(&key)?;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params_buf,
                    offset: i as u64 * PARAM_SLOT,
                    size: wgpu::BufferSize::new(PARAM_SLOT),
                }),
            }];
            for (j, b) in d.bindings.iter().enumerate() {
                let buf = match b {
                    Bind::Input(k, c) | Bind::InputWrite(k, c) => {
                        let t = node.inputs.get(*k).ok_or_else(|| {
                            BackendError::Validation(format!(
                                "{} binds missing input {k}",
                                d.shader
                            ))
                        })?;
                        let s = &slots[t.0];
                        &buffers[*s.bufs.get(*c).ok_or_else(|| {
                            BackendError::Validation(format!(
                                "{} binds missing chunk {c}",
                                d.shader
                            ))
                        })?]
                    }
                    Bind::Output => &buffers[slots[node.output.0].bufs[0]],
                    Bind::Syms => &syms_buf,
                    Bind::Scratch(s, _) | Bind::ScratchRead(s) => {
                        let b = scratch_bufs.get(*s as usize).ok_or_else(|| {
                            BackendError::Validation(format!(
                                "{} reads scratch {s} before any write",
                                d.shader
                            ))
                        })?;
                        &buffers[*b]
                    }
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: j as u32 + 1,
                    resource: buf.as_entire_binding(),
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.shader),
                layout: &pipeline.layout,
                entries: &entries,
            });
            // KILN_PROFILE_GRID=1: profiles tell dispatches apart by grid
            // and first three parameter words (a GEMM's m, cols, k).
            let label = if detail {
                let w = &d.params[..d.params.len().min(3)];
                format!("{}:{} {:?} {w:?}", d.shader, d.entry, d.groups)
            } else {
                format!("{}:{}", d.shader, d.entry)
            };
            steps[*program].push(Step {
                label,
                pipeline,
                bind_group,
                groups: d.groups,
            });
        }
        ctx.queue.write_buffer(&params_buf, 0, &params);
        ctx.take_error()?;
        stats.dispatches = steps.iter().map(Vec::len).collect();
        stats.buffers = buffers.len();
        stats.buffer_bytes = buffers.iter().map(|b| b.size()).sum::<u64>() + params_buf.size();
        // A memory budget on the context (WgpuOptions::max_device_bytes):
        // past it, fail like a real out-of-memory — the buffers made so far
        // are dropped here, so nothing stays allocated.
        ctx.reserve(stats.buffer_bytes)?;
        Ok(WgpuExecutable {
            ctx,
            graph,
            buffers,
            slots,
            syms_buf,
            steps,
            stats,
            pending_copies: Vec::new(),
            reads: Vec::new(),
            next_ticket: 0,
            submit_every: std::env::var("KILN_SUBMIT_EVERY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            poll_each_run: std::env::var("KILN_POLL_EACH_RUN").map_or(true, |v| v != "0"),
            staging_free: Vec::new(),
        })
    }

    /// GPU time per kernel label of one run of program `p`: from timestamps
    /// written between the dispatches of one pass (as in a normal run: each
    /// kernel's time includes waiting for the one before it) when the adapter
    /// has them, else one dispatch per submit, waiting for each (the wall
    /// time then includes each submit's overhead: totals exceed a normal run).
    fn profile_steps(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        // A query set holds at most 4096 timestamps.
        if self.ctx.timestamps && self.steps[p].len() < 4096 {
            return self.profile_stamped(p, syms);
        }
        self.profile_submits(p, syms)
    }

    fn profile_stamped(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        self.set_syms(p, syms)?;
        let steps = &self.steps[p];
        let n = steps.len() as u32 + 1;
        let dev = &self.ctx.device;
        let set = dev.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kiln profile"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let bytes = 8 * n as u64;
        let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln profile resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln profile read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for (i, s) in steps.iter().enumerate() {
                pass.write_timestamp(&set, i as u32);
                pass.set_pipeline(&s.pipeline.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
            }
            pass.write_timestamp(&set, n - 1);
        }
        enc.resolve_query_set(&set, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
        self.ctx.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        dev.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        })
        .map_err(|e| BackendError::DeviceLost(e.to_string()))?;
        self.ctx.take_error()?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| BackendError::Validation(e.to_string()))?;
        let ticks: Vec<u64> = view
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        drop(view);
        staging.unmap();
        let period = self.ctx.queue.get_timestamp_period() as f64 * 1e-9;
        let mut out = crate::backend::KernelProfile::default();
        for (s, w) in steps.iter().zip(ticks.windows(2)) {
            out.add(&s.label, w[1].saturating_sub(w[0]) as f64 * period);
        }
        Ok(out.finish())
    }

    /// The profile with one dispatch per submit, waiting for each.
    fn profile_submits(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        self.set_syms(p, syms)?;
        let wait = |ctx: &GpuContext| {
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: None,
                })
                .map_err(|e| BackendError::DeviceLost(e.to_string()))
        };
        wait(&self.ctx)?;
        let mut out = crate::backend::KernelProfile::default();
        for s in &self.steps[p] {
            let t0 = std::time::Instant::now();
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&s.pipeline.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
            }
            self.ctx.queue.submit([enc.finish()]);
            wait(&self.ctx)?;
            let dt = t0.elapsed().as_secs_f64();
            out.add(&s.label, dt);
        }
        self.ctx.take_error()?;
        Ok(out.finish())
    }

    /// Checks program `p`'s symbol values and writes them for its next run.
    fn set_syms(&self, p: usize, syms: &[u32]) -> Result<(), BackendError> {
        self.graph.check_syms(p, syms)?;
        if !syms.is_empty() {
            let bytes: Vec<u8> = syms.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.ctx.queue.write_buffer(&self.syms_buf, 0, &bytes);
        }
        Ok(())
    }

    /// How many buffers (row chunks) hold tensor `t` (0 for pooled intermediates).
    pub fn chunk_count(&self, t: TensorId) -> usize {
        self.slots.get(t.0).map_or(0, |s| s.bufs.len())
    }

    /// Byte range of chunk `c` of tensor `t` within the tensor's host bytes.
    fn chunk_range(&self, t: TensorId, c: usize) -> std::ops::Range<usize> {
        let s = &self.slots[t.0];
        let ch = s.chunks[c];
        ch.row0 * s.row_bytes..(ch.row0 + ch.rows) * s.row_bytes
    }

    fn write_padded(&self, buf: usize, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.ctx
                .queue
                .write_buffer(&self.buffers[buf], 0, &bytes[..whole]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.ctx
                .queue
                .write_buffer(&self.buffers[buf], whole as u64, &tail);
        }
    }
}

/// Row chunks per tensor: one chunk unless the tensor exceeds the binding
/// limit and every consumer accepts it split (weights of matmul/get_rows).
fn plan_chunks(graph: &Graph, caps: &GpuCaps) -> Result<Vec<(Vec<Chunk>, usize)>, BackendError> {
    let limit = caps.max_binding_bytes;
    graph
        .tensors
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let rows = info.shape[0];
            let row_bytes = info.bytes() / rows.max(1);
            let bytes = info.bytes() as u64;
            if bytes <= limit {
                return Ok((vec![Chunk { row0: 0, rows }], row_bytes));
            }
            let too_large = || BackendError::BindingTooLarge {
                name: info.name.clone(),
                bytes,
                limit,
            };
            let splittable = info.kind != TensorKind::Intermediate
                && info.shape.len() == 2
                && graph.nodes.iter().all(|n| {
                    n.inputs
                        .iter()
                        .enumerate()
                        .all(|(k, t)| t.0 != i || n.op.splittable_input() == Some(k))
                });
            let per = (limit / align4(row_bytes as u64).max(1)) as usize;
            if !splittable || per == 0 {
                return Err(too_large());
            }
            let chunks = (0..rows)
                .step_by(per)
                .map(|row0| Chunk {
                    row0,
                    rows: per.min(rows - row0),
                })
                .collect();
            Ok((chunks, row_bytes))
        })
        .collect()
}

impl Executable for WgpuExecutable {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<(), BackendError> {
        check_write(&self.graph, t, data)?;
        for c in 0..self.slots[t.0].bufs.len() {
            let range = self.chunk_range(t, c);
            self.write_padded(self.slots[t.0].bufs[c], &data.data[range]);
        }
        self.ctx.take_error()
    }

    fn fill(&mut self, t: TensorId, byte: u8) -> Result<(), BackendError> {
        self.graph.info(t)?;
        for b in &self.slots[t.0].bufs {
            let buf = &self.buffers[*b];
            self.ctx
                .queue
                .write_buffer(buf, 0, &vec![byte; buf.size() as usize]);
        }
        self.ctx.take_error()
    }

    fn run_program(&mut self, p: usize, syms: &[u32]) -> Result<(), BackendError> {
        self.ctx.take_error()?;
        self.set_syms(p, syms)?;
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("kiln run"),
            });
        for (src, dst, bytes) in self.pending_copies.drain(..) {
            enc.copy_buffer_to_buffer(&self.buffers[src], 0, &self.buffers[dst], 0, bytes);
        }
        // Retire finished submissions (back-to-back runs otherwise pile up
        // in wgpu's tracking until the next wait).
        if self.poll_each_run {
            let _ = self.ctx.device.poll(wgpu::PollType::Poll);
        }
        // Long programs go in several submits so the GPU starts on the first
        // part while the host encodes the rest.
        let every = if self.submit_every == 0 {
            usize::MAX
        } else {
            self.submit_every
        };
        let mut enc = Some(enc);
        for part in self.steps[p].chunks(every) {
            let mut e = enc.take().unwrap_or_else(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("kiln run"),
                    })
            });
            {
                let mut pass = e.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("kiln graph"),
                    timestamp_writes: None,
                });
                for s in part {
                    pass.set_pipeline(&s.pipeline.pipeline);
                    pass.set_bind_group(0, &s.bind_group, &[]);
                    pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
                }
            }
            self.ctx.queue.submit([e.finish()]);
        }
        // A program with no dispatches still submits its pending copies.
        if let Some(e) = enc {
            self.ctx.queue.submit([e.finish()]);
        }
        self.ctx.take_error()
    }

    fn dispatches(&self, p: usize) -> usize {
        self.steps.get(p).map_or(0, Vec::len)
    }

    fn device_bytes(&self) -> u64 {
        self.stats.buffer_bytes
    }

    fn profile(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        self.profile_steps(p, syms)
    }

    fn weight_chunks(&self, t: TensorId) -> usize {
        self.chunk_count(t)
    }

    fn read(&mut self, t: TensorId) -> Result<HostTensor, BackendError> {
        let ticket = self.read_start(t)?;
        self.read_finish(ticket)
    }

    fn read_start(&mut self, t: TensorId) -> Result<usize, BackendError> {
        readable(&self.graph, t)?;
        let slot = &self.slots[t.0];
        let total: u64 = slot.bufs.iter().map(|b| self.buffers[*b].size()).sum();
        // Reuse a staging buffer of this size when one is free.
        let staging = match self.staging_free.iter().position(|b| b.size() == total) {
            Some(i) => self.staging_free.swap_remove(i),
            None => self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: total,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        let mut offsets = Vec::new();
        let mut off = 0;
        for b in &slot.bufs {
            let size = self.buffers[*b].size();
            enc.copy_buffer_to_buffer(&self.buffers[*b], 0, &staging, off, size);
            offsets.push(off);
            off += size;
        }
        let index = self.ctx.queue.submit([enc.finish()]);
        let map = Arc::new(MapState::default());
        let done = map.clone();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| done.set(r));
        self.ctx.take_error()?;
        self.next_ticket += 1;
        self.reads.push(PendingRead {
            ticket: self.next_ticket,
            t,
            staging,
            offsets,
            index,
            map,
        });
        Ok(self.next_ticket)
    }

    fn read_finish(&mut self, ticket: usize) -> Result<HostTensor, BackendError> {
        let i = self
            .reads
            .iter()
            .position(|r| r.ticket == ticket)
            .ok_or_else(|| BackendError::Validation(format!("no pending read {ticket}")))?;
        let r = self.reads.remove(i);
        let lost = |e: String| BackendError::DeviceLost(e);
        // Native: block until the copy is done. Web: the caller awaited
        // `read_ready` (polling is a no-op there and blocking impossible).
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(r.index.clone()),
                timeout: None,
            })
            .map_err(|e| lost(e.to_string()))?;
        self.ctx.take_error()?;
        match r.map.result() {
            Some(res) => res.map_err(|e| lost(e.to_string()))?,
            None => {
                return Err(BackendError::Validation(format!(
                    "read {ticket} finished before the device delivered it (await read_ready)"
                )));
            }
        }
        let info = self.graph.info(r.t)?.clone();
        let mut data = vec![0u8; info.bytes()];
        {
            let view = r
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| lost(e.to_string()))?;
            for (c, o) in r.offsets.iter().enumerate() {
                let range = self.chunk_range(r.t, c);
                let len = range.len();
                data[range].copy_from_slice(&view[*o as usize..*o as usize + len]);
            }
        }
        r.staging.unmap();
        self.staging_free.push(r.staging);
        Ok(HostTensor::from_bytes(&info.shape, info.dtype, data)?)
    }

    // Native reads block in read_finish (device.poll), so the default (ready
    // at once) applies there: awaiting the map here would wait for a poll
    // that only read_finish makes.
    #[cfg(target_arch = "wasm32")]
    fn read_ready(&self, ticket: usize) -> crate::backend::ReadReady {
        let map = self
            .reads
            .iter()
            .find(|r| r.ticket == ticket)
            .map(|r| r.map.clone());
        Box::pin(std::future::poll_fn(move |cx| match &map {
            Some(m) => m.poll(cx),
            // Unknown tickets fail in read_finish.
            None => std::task::Poll::Ready(()),
        }))
    }

    fn copy_before_next_run(&mut self, src: TensorId, dst: TensorId) -> Result<(), BackendError> {
        let (si, di) = (self.graph.info(src)?, self.graph.info(dst)?);
        let (sb, db) = (&self.slots[src.0].bufs, &self.slots[dst.0].bufs);
        if si.bytes() != di.bytes() || sb.len() != 1 || db.len() != 1 || sb[0] == db[0] {
            return Err(BackendError::Tensor {
                name: di.name.clone(),
                detail: format!("cannot copy '{}' into it", si.name),
            });
        }
        self.pending_copies
            .push((sb[0], db[0], align4(si.bytes() as u64)));
        Ok(())
    }
}

struct PendingRead {
    ticket: usize,
    t: TensorId,
    staging: wgpu::Buffer,
    offsets: Vec<u64>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    index: wgpu::SubmissionIndex,
    map: Arc<MapState>,
}

type MapResult = Result<(), wgpu::BufferAsyncError>;

/// The outcome of a `map_async`, and who to wake when it arrives.
#[derive(Default)]
struct MapState(std::sync::Mutex<(Option<MapResult>, Option<std::task::Waker>)>);

impl MapState {
    fn set(&self, r: MapResult) {
        if let Ok(mut s) = self.0.lock() {
            s.0 = Some(r);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }
    }

    fn result(&self) -> Option<MapResult> {
        self.0.lock().ok().and_then(|s| s.0.clone())
    }

    #[cfg(target_arch = "wasm32")]
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self.0.lock() {
            Ok(mut s) if s.0.is_none() => {
                s.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
            _ => std::task::Poll::Ready(()),
        }
    }
}
