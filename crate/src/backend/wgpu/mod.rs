//! The WebGPU backend on `wgpu`: adapter selection, the device with the
//! adapter's full limits, error capture (validation, out-of-memory, device
//! lost become [`BackendError`]s, never panics), and a pipeline cache keyed
//! on (shader, entry, defines, binding kinds). Graph execution is in `exec`.

mod exec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use exec::WgpuExecutable;

use super::shaders;
use super::{Backend, BackendError, Executable};
use crate::graph::Graph;
use crate::ops::GpuCaps;

/// How to pick and configure the adapter.
#[derive(Clone, Debug, Default)]
pub struct WgpuOptions {
    /// An adapter index (as listed by `kiln devices`) or a case-insensitive
    /// substring of its name or backend ("vulkan", "llvmpipe", "nvidia").
    /// Falls back to the `KILN_ADAPTER` environment variable.
    pub adapter: Option<String>,
    /// Pretend the device's storage-binding limit is this small (tests use it
    /// to exercise weight splitting on any adapter).
    pub max_binding_override: Option<u64>,
    /// Ask for the high-performance or low-power adapter (the browser's
    /// `powerPreference`) instead of ranking all adapters.
    pub power_preference: Option<wgpu::PowerPreference>,
    /// Refuse (`OutOfMemory`) to compile graphs once the executables alive
    /// on this device would hold more than this many bytes — a device with
    /// less memory, for tests and for sharing a GPU.
    pub max_device_bytes: Option<u64>,
    /// Compile shaders without wgpu's injected per-access bounds checks
    /// (native only: browsers add their own). `None` (the default): without
    /// them on GPUs, with them on CPU adapters; `KILN_WGPU_UNCHECKED=0|1`
    /// overrides that default. Unchecked, an index past a binding in a kernel
    /// bug is bounded by the driver's robust buffer access (wgpu enables it),
    /// not clamped per access; the op-parity suite checks every kernel's
    /// indices. The checks cost the H200 half its LLM prefill speed
    /// (docs/bench/2026-12-03-h200-terrain-4/).
    pub unchecked_shaders: Option<bool>,
}

/// One adapter as reported to users (`kiln devices`).
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let be = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::BrowserWebGpu => 0,
        wgpu::Backend::Dx12 => 1,
        _ => 2,
    };
    (ty, be)
}

/// Adapters in preference order (discrete GPUs first, Vulkan/Metal before GL).
pub async fn adapters() -> Vec<wgpu::Adapter> {
    let mut list = instance().enumerate_adapters(wgpu::Backends::all()).await;
    list.sort_by_key(|a| rank(&a.get_info()));
    list
}

pub async fn adapter_reports() -> Vec<AdapterReport> {
    adapters()
        .await
        .into_iter()
        .enumerate()
        .map(|(index, a)| AdapterReport {
            index,
            info: a.get_info(),
            features: a.features(),
            limits: a.limits(),
        })
        .collect()
}

fn pick(list: Vec<wgpu::Adapter>, want: Option<&str>) -> Result<wgpu::Adapter, BackendError> {
    let names: Vec<String> = list
        .iter()
        .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
        .collect();
    let Some(want) = want.filter(|w| !w.is_empty()) else {
        return list
            .into_iter()
            .next()
            .ok_or(BackendError::NoAdapter(String::new()));
    };
    let found = match want.parse::<usize>() {
        Ok(i) => list.into_iter().nth(i),
        Err(_) => {
            let w = want.to_lowercase();
            list.into_iter()
                .zip(&names)
                .find(|(_, n)| n.to_lowercase().contains(&w))
                .map(|(a, _)| a)
        }
    };
    found.ok_or_else(|| {
        BackendError::NoAdapter(format!(" matching '{want}' (have: {})", names.join(", ")))
    })
}

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub(crate) type PipelineKey = (&'static str, &'static str, Vec<&'static str>, Vec<bool>);

/// A device and queue with Kiln's error capture and pipeline cache.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub caps: GpuCaps,
    errors: Arc<Mutex<Vec<BackendError>>>,
    lost: Arc<Mutex<Option<String>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    /// Bytes held by live executables, and the budget for them.
    allocated: std::sync::atomic::AtomicU64,
    budget: Option<u64>,
    unchecked: bool,
    /// Timestamp queries inside compute passes are enabled.
    pub timestamps: bool,
}

impl GpuContext {
    pub async fn new(opts: &WgpuOptions) -> Result<GpuContext, BackendError> {
        let env = std::env::var("KILN_ADAPTER").ok();
        let adapter = match opts.power_preference {
            Some(power_preference) => instance()
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference,
                    ..Default::default()
                })
                .await
                .map_err(|e| BackendError::NoAdapter(format!(": {e}")))?,
            None => pick(adapters().await, opts.adapter.as_deref().or(env.as_deref()))?,
        };
        let info = adapter.get_info();
        let offered = adapter.features();
        // Timestamps between dispatches (native adapters) time each kernel
        // of a profile inside one pass, with no per-submit overhead.
        let stamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let mut features = offered & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        if offered.contains(stamps) {
            features |= stamps;
        }
        // Tensor cores through wgpu's experimental cooperative matrices
        // (Vulkan's VK_KHR_cooperative_matrix): the low-precision prefill
        // (mul_mat_coop_half.wgsl, used with 8-bit activations only) wants
        // 16×16×16 f16 products into f32 on 32-wide subgroups. Native GPUs
        // only; `KILN_COOP=0` turns it off (H100: 1.49× the integer GEMM's
        // prefill, docs/bench/2026-12-07-h100-coop-half).
        let coop = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        let coop_f16 = !cfg!(target_arch = "wasm32")
            && info.device_type != wgpu::DeviceType::Cpu
            && offered.contains(coop | wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 32
            && info.subgroup_max_size == 32
            && crate::ops::env_switch("KILN_COOP") != Some(false)
            && adapter.cooperative_matrix_properties().iter().any(|c| {
                (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
                    && c.ab_type == wgpu::CooperativeScalarType::F16
                    && c.cr_type == wgpu::CooperativeScalarType::F32
            });
        if coop_f16 {
            features |= coop;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("kiln"),
                required_features: features,
                required_limits: limits.clone(),
                // SAFETY: the one experimental feature ever requested is the
                // cooperative matrix, used only by the mul_mat_coop kernels, whose
                // op-parity cases run on every device that offers it.
                experimental_features: if coop_f16 {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| BackendError::RequestDevice(e.to_string()))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let err = match e {
                wgpu::Error::OutOfMemory { .. } => BackendError::OutOfMemory(e.to_string()),
                wgpu::Error::Validation { description, .. } => {
                    BackendError::Validation(description)
                }
                wgpu::Error::Internal { description, .. } => BackendError::Validation(description),
            };
            if let Ok(mut v) = sink.lock() {
                v.push(err);
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = lost_sink.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let caps = GpuCaps {
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_size: if info.subgroup_min_size == info.subgroup_max_size {
                info.subgroup_max_size
            } else {
                0
            },
            // KILN_WGPU_AS_GPU=1: plan a CPU adapter's kernels as on a GPU
            // (so lavapipe checks the GPU kernels' results; slowly).
            cpu: info.device_type == wgpu::DeviceType::Cpu
                && crate::ops::env_switch("KILN_WGPU_AS_GPU") != Some(true),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            max_binding_bytes: max_binding,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            gemv_xreg: crate::ops::env_switch("KILN_GEMV_XREG").unwrap_or(true),
            gemm_big: crate::ops::env_switch("KILN_GEMM_BIG").unwrap_or(true),
            q8_activations: GpuCaps::q8_activations_from_env(
                crate::ops::matmul_q8::MIN_WEIGHTS_WGPU,
            ),
            q8_local: crate::ops::env_switch("KILN_Q8_LOCAL").unwrap_or(true),
            coop_f16,
            q8_prefill_mma: false,
            kv_in_attention: crate::ops::env_switch("KILN_NEW_KV").unwrap_or(true),
            attn_gqa: None,
        };
        let unchecked = opts.unchecked_shaders.unwrap_or_else(|| {
            match std::env::var("KILN_WGPU_UNCHECKED").as_deref() {
                Ok("1") => true,
                Ok("0") => false,
                _ => !caps.cpu,
            }
        });
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            caps,
            errors,
            lost,
            pipelines: Mutex::new(HashMap::new()),
            allocated: Default::default(),
            budget: opts.max_device_bytes,
            unchecked,
            timestamps: features.contains(stamps),
        })
    }

    /// Accounts `bytes` more held on the device, or `OutOfMemory` past the
    /// budget (nothing is accounted then).
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), BackendError> {
        use std::sync::atomic::Ordering;
        let held = self.allocated.fetch_add(bytes, Ordering::SeqCst) + bytes;
        match self.budget {
            Some(b) if held > b => {
                self.allocated.fetch_sub(bytes, Ordering::SeqCst);
                Err(BackendError::OutOfMemory(format!(
                    "{bytes} bytes of buffers with {} already held exceed the device budget of {b}",
                    held - bytes
                )))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn release(&self, bytes: u64) {
        self.allocated
            .fetch_sub(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    /// Bytes of buffers held by live executables on this device.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Destroys the device (as a driver reset or a lost GPU would): every
    /// later use reports `DeviceLost`. For tests of recovery.
    pub fn destroy_device(&self) {
        self.device.destroy();
    }

    /// The first error captured since the last check (device loss first).
    pub fn take_error(&self) -> Result<(), BackendError> {
        if let Some(msg) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(BackendError::DeviceLost(msg));
        }
        let mut errs = self
            .errors
            .lock()
            .map_err(|_| BackendError::DeviceLost("error sink poisoned".into()))?;
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.remove(0)).inspect(|_| errs.clear())
        }
    }

    pub(crate) fn pipeline(&self, key: &PipelineKey) -> Result<Arc<Pipeline>, BackendError> {
        if let Some(p) = self.pipelines.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(p);
        }
        let (shader, entry, defines, writable) = key;
        let src = shaders::preprocess(shader, defines)?;
        self.take_error()?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        };
        let module = if self.unchecked && !cfg!(target_arch = "wasm32") {
            // SAFETY: `unchecked_shaders` (by default on native GPUs): every
            // kernel's indices are bounded by its planned shapes, which the
            // op-parity suite checks on every backend, and the device's
            // robust buffer access bounds storage accesses regardless.
            unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            self.device.create_shader_module(desc)
        };
        let compile_err = |e: BackendError| BackendError::ShaderCompile {
            shader: format!("{shader}:{entry} {defines:?}"),
            message: e.to_string(),
        };
        self.take_error().map_err(compile_err)?;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, w) in writable.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: !w },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(shader),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(shader),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.take_error().map_err(compile_err)?;
        // The package's threaded wasm build (atomics) makes wgpu's browser
        // types !Send; WebGPU engines there stay on their thread.
        #[cfg_attr(target_feature = "atomics", allow(clippy::arc_with_non_send_sync))]
        let p = Arc::new(Pipeline { pipeline, layout });
        if let Ok(mut m) = self.pipelines.lock() {
            m.insert(key.clone(), p.clone());
        }
        Ok(p)
    }
}

/// The wgpu backend. Cheap to clone (shares the device).
#[derive(Clone)]
pub struct WgpuBackend {
    pub ctx: Arc<GpuContext>,
    /// The device's capabilities as kernels see them (binding limit may be
    /// lowered with [`WgpuBackend::with_binding_limit`]).
    pub caps: GpuCaps,
}

impl WgpuBackend {
    // wgpu's types are not Send on the web (single-threaded there).
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn new_async(opts: &WgpuOptions) -> Result<WgpuBackend, BackendError> {
        let ctx = Arc::new(GpuContext::new(opts).await?);
        let mut caps = ctx.caps.clone();
        if let Some(limit) = opts.max_binding_override {
            caps.max_binding_bytes = caps.max_binding_bytes.min(limit);
        }
        Ok(WgpuBackend { ctx, caps })
    }

    /// The same device with kernels chosen as for a GPU (`cpu = false`) or a
    /// CPU adapter — lets a CPU adapter test the GPU kernel variants too.
    pub fn with_cpu_kernels(&self, cpu: bool) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.cpu = cpu;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// The same device with the matrix products' 8-bit activations on for
    /// matrices of at least this many weights, or off (`None`)
    /// (`GpuCaps::q8_activations`, ops/matmul_q8.rs).
    pub fn with_q8_activations(&self, on: Option<usize>) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.q8_activations = on;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// The same device with the one-token 8-bit products quantizing x in
    /// their own workgroups (`true`) or in a dispatch before them
    /// (`GpuCaps::q8_local`).
    /// The same device with the decode attention writing its own cache rows
    /// or not (`GpuCaps::kv_in_attention`).
    pub fn with_kv_in_attention(&self, on: bool) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.kv_in_attention = on;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// The same device with prefill attention by `attn_gqa` (4 or 8 lanes
    /// per row) or `attn_tile` (`None`; `GpuCaps::attn_gqa`).
    pub fn with_attn_gqa(&self, lanes: Option<usize>) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.attn_gqa = lanes;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    pub fn with_q8_local(&self, on: bool) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.q8_local = on;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// The same device with subgroup operations off (the fallback kernels).
    pub fn without_subgroups(&self) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.subgroups = false;
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// The same device, with weights split at `limit` bytes per binding.
    pub fn with_binding_limit(&self, limit: u64) -> WgpuBackend {
        let mut caps = self.caps.clone();
        caps.max_binding_bytes = caps.max_binding_bytes.min(limit);
        WgpuBackend {
            ctx: self.ctx.clone(),
            caps,
        }
    }

    /// Blocking constructor (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &WgpuOptions) -> Result<WgpuBackend, BackendError> {
        pollster::block_on(Self::new_async(opts))
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> String {
        let q8 = if self.caps.q8_activations.is_some() {
            ", 8-bit activations"
        } else {
            ""
        };
        format!(
            "wgpu/{:?} {}{q8}",
            self.ctx.info.backend, self.ctx.info.name
        )
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(WgpuExecutable::new(
            self.ctx.clone(),
            self.caps.clone(),
            graph,
        )?))
    }
}
