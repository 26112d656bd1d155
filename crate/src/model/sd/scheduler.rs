//! Diffusion schedulers on the host (f64 arithmetic on the latents), as
//! diffusers computes them: Euler, Euler ancestral, DDIM (η = 0),
//! DPM-Solver++ 2M (optionally with Karras sigmas) and LCM, from a folder's
//! `scheduler/scheduler_config.json` (betas, spacing, offset, prediction
//! type). The denoising loop calls `scale_model_input` on the UNet input and
//! `step` on its (guided) output, once per timestep.

use serde_json::Value;

use crate::loader::LoadError;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    Euler,
    EulerAncestral,
    Ddim,
    DpmPp2m,
    DpmPp2mKarras,
    Lcm,
}

impl SchedulerKind {
    /// CLI / JS names: `euler`, `euler-a`, `ddim`, `dpm++2m`, `dpm++2m-karras`, `lcm`.
    pub fn parse(s: &str) -> Option<SchedulerKind> {
        Some(match s {
            "euler" => SchedulerKind::Euler,
            "euler-a" | "euler_ancestral" => SchedulerKind::EulerAncestral,
            "ddim" => SchedulerKind::Ddim,
            "dpm++2m" | "dpmpp_2m" => SchedulerKind::DpmPp2m,
            "dpm++2m-karras" | "dpmpp_2m_karras" => SchedulerKind::DpmPp2mKarras,
            "lcm" => SchedulerKind::Lcm,
            _ => return None,
        })
    }

    /// Whether `step` may draw noise (see [`Scheduler::needs_noise`]).
    pub fn stochastic(self) -> bool {
        matches!(self, SchedulerKind::EulerAncestral | SchedulerKind::Lcm)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    V,
}

/// The schedule of a `scheduler_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedConfig {
    pub train_steps: usize,
    pub alphas_cumprod: Vec<f64>,
    /// `leading`, `trailing` or `linspace`.
    /// `leading`, `trailing` or `linspace`; None: unset in the file, so
    /// each scheduler's own default (diffusers' classes differ: Euler and
    /// DPM `linspace`, DDIM and LCM `leading`).
    pub spacing: Option<String>,
    pub steps_offset: usize,
    pub prediction: Prediction,
    pub set_alpha_to_one: bool,
    /// LCM: the distillation's step grid and boundary-condition scaling.
    pub original_inference_steps: usize,
    pub timestep_scaling: f64,
}

impl SchedConfig {
    pub fn from_json(v: &Value) -> Result<SchedConfig, LoadError> {
        let bad = |d: String| LoadError::UnsupportedModel(format!("scheduler: {d}"));
        let n = v
            .get("num_train_timesteps")
            .and_then(Value::as_u64)
            .unwrap_or(1000) as usize;
        let f = |k: &str, d: f64| v.get(k).and_then(Value::as_f64).unwrap_or(d);
        let (b0, b1) = (f("beta_start", 0.00085), f("beta_end", 0.012));
        super::config::within(
            "scheduler",
            "num_train_timesteps",
            n,
            super::config::limits::TIMESTEPS,
        )?;
        if n < 2 || !(b0 > 0.0 && b1 < 1.0 && b0 <= b1) {
            return Err(bad(format!("{n} steps, betas {b0}..{b1}")));
        }
        if v.get("trained_betas").is_some_and(|t| !t.is_null()) {
            return Err(bad("trained_betas are not supported".into()));
        }
        if v.get("rescale_betas_zero_snr").and_then(Value::as_bool) == Some(true) {
            return Err(bad("rescale_betas_zero_snr is not supported".into()));
        }
        let lin = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / (n - 1) as f64;
        let sched = v
            .get("beta_schedule")
            .and_then(Value::as_str)
            .unwrap_or("linear");
        let betas: Vec<f64> = match sched {
            "scaled_linear" => (0..n)
                .map(|i| lin(b0.sqrt(), b1.sqrt(), i).powi(2))
                .collect(),
            "linear" => (0..n).map(|i| lin(b0, b1, i)).collect(),
            other => return Err(bad(format!("beta_schedule '{other}'"))),
        };
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let prediction = match v
            .get("prediction_type")
            .and_then(Value::as_str)
            .unwrap_or("epsilon")
        {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            other => return Err(bad(format!("prediction_type '{other}'"))),
        };
        let spacing = v
            .get("timestep_spacing")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(sp) = &spacing
            && !["leading", "trailing", "linspace"].contains(&sp.as_str())
        {
            return Err(bad(format!("timestep_spacing '{sp}'")));
        }
        Ok(SchedConfig {
            train_steps: n,
            alphas_cumprod,
            spacing,
            steps_offset: v.get("steps_offset").and_then(Value::as_u64).unwrap_or(0) as usize,
            prediction,
            set_alpha_to_one: v
                .get("set_alpha_to_one")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            original_inference_steps: v
                .get("original_inference_steps")
                .and_then(Value::as_u64)
                .filter(|s| (1..=n as u64).contains(s))
                .unwrap_or(50) as usize,
            timestep_scaling: f("timestep_scaling", 10.0),
        })
    }

    /// `√((1 − ᾱ)/ᾱ)` per training step.
    fn sigmas(&self) -> Vec<f64> {
        self.alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect()
    }

    /// Inference timesteps, descending, as each diffusers scheduler's
    /// `set_timesteps` spaces them (numpy's round-half-to-even throughout).
    fn timesteps(&self, kind: SchedulerKind, spacing: &str, steps: usize) -> Vec<f64> {
        let n = self.train_steps;
        let dpm = matches!(kind, SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras);
        let lin = |i: usize, parts: usize| {
            if parts > 1 {
                i as f64 * (n - 1) as f64 / (parts - 1) as f64
            } else {
                0.0
            }
        };
        match spacing {
            // Euler: the float points of linspace(0, N−1, steps); DDIM
            // rounds them; DPM rounds steps + 1 of them and drops the 0.
            "linspace" if dpm => (1..=steps)
                .rev()
                .map(|i| lin(i, steps + 1).round_ties_even())
                .collect(),
            "linspace" if kind == SchedulerKind::Ddim => (0..steps)
                .rev()
                .map(|i| lin(i, steps).round_ties_even())
                .collect(),
            "linspace" => (0..steps).rev().map(|i| lin(i, steps)).collect(),
            "trailing" => {
                let ratio = n as f64 / steps as f64;
                (0..steps)
                    .map(|i| ((n as f64 - i as f64 * ratio).round_ties_even() - 1.0).max(0.0))
                    .collect()
            }
            // DPM: arange(steps + 1)·ratio reversed, without the final 0.
            _ if dpm => {
                let ratio = n / (steps + 1);
                (1..=steps)
                    .rev()
                    .map(|i| (i * ratio + self.steps_offset) as f64)
                    .collect()
            }
            _ => {
                let ratio = n / steps;
                (0..steps)
                    .rev()
                    .map(|i| (i * ratio + self.steps_offset) as f64)
                    .collect()
            }
        }
    }
}

/// `np.interp(t, arange(len(s)), s)`.
fn interp(t: f64, s: &[f64]) -> f64 {
    let t = t.clamp(0.0, (s.len() - 1) as f64);
    let i = (t.floor() as usize).min(s.len() - 2);
    let w = t - i as f64;
    s[i] * (1.0 - w) + s[i + 1] * w
}

/// diffusers' `_sigma_to_t`: the fractional training step of `sigma`.
fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let ls = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    let low = log_sigmas
        .iter()
        .rposition(|l| ls - l >= 0.0)
        .unwrap_or(0)
        .min(n - 2);
    let (lo, hi) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((lo - ls) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// A scheduler set up for `steps` inference steps.
pub struct Scheduler {
    pub kind: SchedulerKind,
    cfg: SchedConfig,
    /// The timesteps fed to the UNet, one per step.
    pub timesteps: Vec<f64>,
    /// σ per step plus the final one (Euler, DPM).
    sigmas: Vec<f64>,
    /// The previous step's x₀ prediction (DPM-Solver++ 2M).
    prev_x0: Option<Vec<f64>>,
    steps: usize,
    /// The timestep spacing in effect (the file's, or the kind's default).
    spacing: String,
}

impl Scheduler {
    pub fn new(
        kind: SchedulerKind,
        cfg: &SchedConfig,
        steps: usize,
    ) -> Result<Scheduler, LoadError> {
        if steps == 0 || steps > cfg.train_steps {
            return Err(LoadError::Kiln(crate::error::KilnError::BadInput {
                name: "steps".into(),
                detail: format!("{steps} steps (1 to {})", cfg.train_steps),
            }));
        }
        let all = cfg.sigmas();
        let spacing = cfg.spacing.clone().unwrap_or_else(|| {
            match kind {
                SchedulerKind::Ddim | SchedulerKind::Lcm => "leading",
                _ => "linspace",
            }
            .to_string()
        });
        let (timesteps, sigmas) = if kind == SchedulerKind::Lcm {
            // Every k-th training step of the distillation grid, reversed,
            // `steps` of them evenly by index.
            let orig = cfg.original_inference_steps;
            let k = cfg.train_steps / orig;
            if steps > orig {
                return Err(LoadError::Kiln(crate::error::KilnError::BadInput {
                    name: "steps".into(),
                    detail: format!("LCM runs at most {orig} steps"),
                }));
            }
            let t: Vec<f64> = (0..steps)
                .map(|i| {
                    let idx = (i * orig) / steps;
                    ((orig - idx) * k - 1) as f64
                })
                .collect();
            let s = t.iter().map(|t| interp(*t, &all)).collect();
            (t, s)
        } else if kind == SchedulerKind::DpmPp2mKarras {
            let (smin, smax) = (all[0], all[all.len() - 1]);
            let rho = 7.0;
            let (lo, hi) = (smin.powf(1.0 / rho), smax.powf(1.0 / rho));
            let s: Vec<f64> = (0..steps)
                .map(|i| {
                    let r = if steps > 1 {
                        i as f64 / (steps - 1) as f64
                    } else {
                        0.0
                    };
                    (hi + r * (lo - hi)).powf(rho)
                })
                .collect();
            let log: Vec<f64> = all.iter().map(|x| x.ln()).collect();
            let t = s
                .iter()
                .map(|x| sigma_to_t(*x, &log).round_ties_even())
                .collect();
            (t, s)
        } else {
            let t = cfg.timesteps(kind, &spacing, steps);
            let s = t.iter().map(|t| interp(*t, &all)).collect();
            (t, s)
        };
        let mut sigmas: Vec<f64> = sigmas;
        sigmas.push(0.0);
        Ok(Scheduler {
            kind,
            cfg: cfg.clone(),
            timesteps,
            sigmas,
            prev_x0: None,
            steps,
            spacing,
        })
    }

    fn euler_like(&self) -> bool {
        matches!(
            self.kind,
            SchedulerKind::Euler | SchedulerKind::EulerAncestral
        )
    }

    /// σ per step plus the final one (Euler-family and DPM schedules).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The factor on unit-variance starting noise.
    pub fn init_noise_sigma(&self) -> f64 {
        if !self.euler_like() {
            return 1.0;
        }
        let m = self.sigmas.iter().cloned().fold(0.0, f64::max);
        if self.spacing == "leading" {
            (m * m + 1.0).sqrt()
        } else {
            m
        }
    }

    /// img2img: the first step to run for `strength` in (0, 1] —
    /// diffusers' `get_timesteps`: the last `⌊steps·strength⌋` steps run
    /// (every scheduler here has order 1).
    pub fn first_step(&self, strength: f64) -> Result<usize, LoadError> {
        let run = ((self.steps as f64 * strength) as usize).min(self.steps);
        if !(strength > 0.0 && strength <= 1.0) || run == 0 {
            return Err(LoadError::Kiln(crate::error::KilnError::BadInput {
                name: "strength".into(),
                detail: format!(
                    "{strength} with {} steps runs no step (strength in (0, 1], steps × strength ≥ 1)",
                    self.steps
                ),
            }));
        }
        Ok(self.steps - run)
    }

    /// img2img: clean latents `x0` noised to step `i`'s level with `noise`
    /// (N(0, 1)), each scheduler's `add_noise`: `x0 + σ·ε` (Euler), `α·x0 +
    /// σ_t·ε` with α = 1/√(σ²+1) (DPM-Solver++), `√ᾱ_t·x0 + √(1−ᾱ_t)·ε`
    /// (DDIM, LCM).
    pub fn add_noise(&self, i: usize, x0: &[f32], noise: &[f32]) -> Vec<f32> {
        let (a, b) = match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => (1.0, self.sigmas[i]),
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                let s = self.sigmas[i];
                let a = 1.0 / (s * s + 1.0).sqrt();
                (a, s * a)
            }
            SchedulerKind::Ddim | SchedulerKind::Lcm => {
                let ac = &self.cfg.alphas_cumprod;
                let t = (self.timesteps[i] as usize).min(ac.len() - 1);
                (ac[t].sqrt(), (1.0 - ac[t]).sqrt())
            }
        };
        x0.iter()
            .zip(noise)
            .map(|(x, e)| (a * *x as f64 + b * *e as f64) as f32)
            .collect()
    }

    /// Whether step `i` needs a noise draw (Euler ancestral: every step;
    /// LCM: all but the last).
    pub fn needs_noise(&self, i: usize) -> bool {
        match self.kind {
            SchedulerKind::EulerAncestral => true,
            SchedulerKind::Lcm => i + 1 < self.steps,
            _ => false,
        }
    }

    /// The factor the UNet's input is scaled by at step `i`.
    pub fn input_scale(&self, i: usize) -> f64 {
        if self.euler_like() {
            let s = self.sigmas[i];
            1.0 / (s * s + 1.0).sqrt()
        } else {
            1.0
        }
    }

    /// The clean latents predicted at step `i` from the model output `o` and
    /// the sample `x` (element-wise; the formula each scheduler's `step`
    /// uses): ε or v prediction over the step's σ or ᾱ.
    fn x0_at(&self, i: usize) -> impl Fn(f64, f64) -> f64 + use<> {
        let v = self.cfg.prediction == Prediction::V;
        let ac = &self.cfg.alphas_cumprod;
        let alpha = |t: f64| ac[(t as usize).min(ac.len() - 1)];
        // (kind: 0 σ-space (Euler), 1 ᾱ-space (DDIM, LCM), 2 α/σ_t (DPM)).
        let (kind, s, a) = match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => (0, self.sigmas[i], 0.0),
            SchedulerKind::Ddim | SchedulerKind::Lcm => (1, 0.0, alpha(self.timesteps[i])),
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => (2, self.sigmas[i], 0.0),
        };
        move |o: f64, x: f64| match (kind, v) {
            (0, true) => o * (-s / (s * s + 1.0).sqrt()) + x / (s * s + 1.0),
            (0, false) => x - s * o,
            (1, true) => a.sqrt() * x - (1.0 - a).sqrt() * o,
            (1, false) => (x - (1.0 - a).sqrt() * o) / a.sqrt(),
            (_, true) => {
                let a0 = 1.0 / (s * s + 1.0).sqrt();
                a0 * x - s * a0 * o
            }
            (_, false) => {
                let a0 = 1.0 / (s * s + 1.0).sqrt();
                (x - s * a0 * o) / a0
            }
        }
    }

    /// The clean latents step `i` predicts (its `denoised`: what a preview
    /// decodes) from the model output and the sample before the step. LCM's
    /// is the consistency boundary condition applied to it, as its pipeline
    /// returns.
    pub fn denoised(&self, i: usize, out: &[f32], sample: &[f32]) -> Vec<f32> {
        if i >= self.steps {
            return sample.to_vec();
        }
        let x0 = self.x0_at(i);
        let (c_skip, c_out) = if self.kind == SchedulerKind::Lcm {
            let st = self.timesteps[i] * self.cfg.timestep_scaling;
            (0.25 / (st * st + 0.25), st / (st * st + 0.25).sqrt())
        } else {
            (0.0, 1.0)
        };
        out.iter()
            .zip(sample)
            .map(|(o, x)| {
                let (o, x) = (*o as f64, *x as f64);
                (c_out * x0(o, x) + c_skip * x) as f32
            })
            .collect()
    }

    /// One step: the latents after step `i` from the model output (`noise`:
    /// the step's N(0, 1) draw, for stochastic schedulers).
    pub fn step(
        &mut self,
        i: usize,
        out: &[f32],
        sample: &[f32],
        noise: Option<&[f32]>,
    ) -> Result<Vec<f32>, LoadError> {
        let bad = |d: String| {
            LoadError::Kiln(crate::error::KilnError::BadInput {
                name: "scheduler".into(),
                detail: d,
            })
        };
        if i >= self.steps || out.len() != sample.len() {
            return Err(bad(format!(
                "step {i} of {}, {} vs {} values",
                self.steps,
                out.len(),
                sample.len()
            )));
        }
        let v = self.cfg.prediction == Prediction::V;
        Ok(match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerAncestral => {
                let (s, s_next) = (self.sigmas[i], self.sigmas[i + 1]);
                let x0 = self.x0_at(i);
                if self.kind == SchedulerKind::Euler {
                    out.iter()
                        .zip(sample)
                        .map(|(o, x)| {
                            let (o, x) = (*o as f64, *x as f64);
                            let d = (x - x0(o, x)) / s;
                            (x + d * (s_next - s)) as f32
                        })
                        .collect()
                } else {
                    let noise = noise.filter(|n| n.len() == sample.len()).ok_or_else(|| {
                        bad("Euler ancestral needs one noise value per latent".into())
                    })?;
                    let up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
                    let down = (s_next * s_next - up * up).sqrt();
                    out.iter()
                        .zip(sample)
                        .zip(noise)
                        .map(|((o, x), z)| {
                            let (o, x) = (*o as f64, *x as f64);
                            let d = (x - x0(o, x)) / s;
                            (x + d * (down - s) + *z as f64 * up) as f32
                        })
                        .collect()
                }
            }
            SchedulerKind::Ddim => {
                let ac = &self.cfg.alphas_cumprod;
                let t = self.timesteps[i] as usize;
                let prev = t as i64 - (self.cfg.train_steps / self.steps) as i64;
                let a = ac[t.min(ac.len() - 1)];
                let x0 = self.x0_at(i);
                let ap = if prev >= 0 {
                    ac[prev as usize]
                } else if self.cfg.set_alpha_to_one {
                    1.0
                } else {
                    ac[0]
                };
                out.iter()
                    .zip(sample)
                    .map(|(o, x)| {
                        let (o, x) = (*o as f64, *x as f64);
                        let (x0, eps) = if v {
                            (x0(o, x), a.sqrt() * o + (1.0 - a).sqrt() * x)
                        } else {
                            (x0(o, x), o)
                        };
                        (ap.sqrt() * x0 + (1.0 - ap).sqrt() * eps) as f32
                    })
                    .collect()
            }
            SchedulerKind::Lcm => {
                let ac = &self.cfg.alphas_cumprod;
                let t = self.timesteps[i];
                let x0 = self.x0_at(i);
                let last = i + 1 == self.steps;
                let ap = if last {
                    ac[(t as usize).min(ac.len() - 1)]
                } else {
                    ac[self.timesteps[i + 1] as usize]
                };
                // Consistency-model boundary condition (σ_data 0.5).
                let st = t * self.cfg.timestep_scaling;
                let c_skip = 0.25 / (st * st + 0.25);
                let c_out = st / (st * st + 0.25).sqrt();
                let noise = if last {
                    None
                } else {
                    Some(
                        noise
                            .filter(|n| n.len() == sample.len())
                            .ok_or_else(|| bad("LCM needs one noise value per latent".into()))?,
                    )
                };
                out.iter()
                    .zip(sample)
                    .enumerate()
                    .map(|(j, (o, x))| {
                        let (o, x) = (*o as f64, *x as f64);
                        let den = c_out * x0(o, x) + c_skip * x;
                        match noise {
                            Some(z) => (ap.sqrt() * den + (1.0 - ap).sqrt() * z[j] as f64) as f32,
                            None => den as f32,
                        }
                    })
                    .collect()
            }
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                // α_t = 1/√(σ²+1), σ_t = σ·α_t, λ = ln α_t − ln σ_t.
                let at = |s: f64| 1.0 / (s * s + 1.0).sqrt();
                let lam = |s: f64| -s.ln();
                let (s0, s1) = (self.sigmas[i], self.sigmas[i + 1]);
                let sg0 = s0 * at(s0);
                let pred = self.x0_at(i);
                let x0: Vec<f64> = out
                    .iter()
                    .zip(sample)
                    .map(|(o, x)| pred(*o as f64, *x as f64))
                    .collect();
                let (a1, sg1) = (at(s1), s1 * at(s1));
                // The last step is first order (lower_order_final / σ = 0).
                let last = i + 1 == self.steps;
                let y: Vec<f32> = if s1 == 0.0 {
                    x0.iter().map(|v| *v as f32).collect()
                } else {
                    let h = lam(s1) - lam(s0);
                    let e = (-h).exp() - 1.0;
                    match (&self.prev_x0, last) {
                        (Some(m1), false) if i > 0 => {
                            let h0 = lam(s0) - lam(self.sigmas[i - 1]);
                            let r0 = h0 / h;
                            x0.iter()
                                .zip(m1)
                                .zip(sample)
                                .map(|((m0, m1), x)| {
                                    let d1 = (m0 - m1) / r0;
                                    ((sg1 / sg0) * *x as f64 - a1 * e * m0 - 0.5 * a1 * e * d1)
                                        as f32
                                })
                                .collect()
                        }
                        _ => x0
                            .iter()
                            .zip(sample)
                            .map(|(m0, x)| ((sg1 / sg0) * *x as f64 - a1 * e * m0) as f32)
                            .collect(),
                    }
                };
                self.prev_x0 = Some(x0);
                y
            }
        })
    }
}
