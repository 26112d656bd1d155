//! A small persistent thread pool for the fast CPU backend's per-op loops.
//!
//! Why not rayon: a decode step is ~200 ops of 20–100 µs each, and handing
//! each op's loop to rayon's pool from the calling thread cost about 40 µs
//! here (a 576×1536 Q4_1 GEMV took 57 µs on one thread and 68 µs on two;
//! `crate/examples/cpu_mm.rs`). Here the workers spin on a job counter
//! between ops (as llama.cpp's CPU backend does) and park only after about
//! two milliseconds without work, so a step's ops start in well under a
//! microsecond and an idle pool costs no CPU.
//!
//! A job is `f(task)` for `task` in `0..n`; the caller runs tasks too and
//! returns once every worker has finished with the job.
//!
//! In the browser (the package's threaded build: wasm32 with `atomics`) the
//! workers are Web Workers sharing the module's memory, started by
//! `crate/js/pool.js`; they start asynchronously, so the pool runs every
//! job on the caller until all of them have checked in ([`Pool::ready`]),
//! and the package waits for that before it uses the engine.

#![cfg_attr(
    all(
        target_arch = "wasm32",
        not(all(target_feature = "atomics", feature = "web"))
    ),
    allow(dead_code)
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Incremented for every job; workers run a job when it changes.
    epoch: AtomicUsize,
    /// The current job (a borrowed closure, see `run`) and its task count.
    job: Mutex<Option<(usize, &'static Job)>>,
    next: AtomicUsize,
    /// Workers that finished the current job.
    done: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Workers that have entered their loop (see `worker`).
    started: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Workers asked for (the caller is not one of them).
    workers: usize,
    /// Native threads, joined on drop (Web Workers end on their own).
    handles: Vec<std::thread::JoinHandle<()>>,
    /// Serializes callers (one job at a time).
    gate: Mutex<()>,
}

/// How long a worker spins for the next job before parking.
#[cfg(not(target_arch = "wasm32"))]
const SPIN: Duration = Duration::from_millis(2);
/// Where there is no clock (wasm32-unknown-unknown): rounds of 1024 spins
/// before parking (≈ 1–3 ms on current CPUs).
#[cfg(target_arch = "wasm32")]
const SPIN_ROUNDS: u32 = 1500;

impl Pool {
    /// A pool of `threads` (the caller counts as one: `threads − 1`
    /// workers are started). None where threads cannot be spawned.
    pub fn new(threads: usize) -> Option<Pool> {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: Mutex::new(None),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        // Built first so that a failed spawn stops the workers already started.
        let mut pool = Pool {
            shared,
            workers: 0,
            handles: Vec::new(),
            gate: Mutex::new(()),
        };
        for i in 1..threads {
            if !spawn(i, &pool.shared, &mut pool.handles) {
                return None;
            }
            pool.workers += 1;
        }
        // Native threads check in within microseconds; wait for them so
        // that the first jobs already run in parallel.
        #[cfg(not(target_arch = "wasm32"))]
        {
            let t0 = std::time::Instant::now();
            while !pool.ready() && t0.elapsed() < Duration::from_secs(1) {
                std::thread::yield_now();
            }
        }
        Some(pool)
    }

    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Whether every worker has started (until then jobs run on the caller).
    pub fn ready(&self) -> bool {
        self.shared.started.load(Ordering::Acquire) >= self.workers
    }

    /// Runs `f(task)` for every task in `0..n` on the caller and the
    /// workers. False if a task panicked (a bug: kernels do not panic).
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
        if self.workers == 0 || n <= 1 || !self.ready() {
            return catch_unwind(AssertUnwindSafe(|| (0..n).for_each(f))).is_ok();
        }
        let _one = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: the `'static` lifetime is a lie told only to the workers:
        // this function does not return (nor unwind) before every worker
        // has counted itself done with this epoch, after which no worker
        // touches the job again; the slot is cleared before returning.
        let job: &'static Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Job>(f) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, job));
        s.next.store(0, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        {
            let _g = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| claim(s, n, job)));
        while s.done.load(Ordering::Acquire) < self.workers {
            std::hint::spin_loop();
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let worker_ok = !s.panicked.swap(false, Ordering::Relaxed);
        mine.is_ok() && worker_ok
    }
}

/// Takes tasks of the current job until none are left.
fn claim(s: &Shared, n: usize, job: &Job) {
    loop {
        let t = s.next.fetch_add(1, Ordering::Relaxed);
        if t >= n {
            return;
        }
        job(t);
    }
}

/// Starts worker `i` on a native thread.
#[cfg(not(target_arch = "wasm32"))]
fn spawn(i: usize, shared: &Arc<Shared>, handles: &mut Vec<std::thread::JoinHandle<()>>) -> bool {
    let s = shared.clone();
    match std::thread::Builder::new()
        .name(format!("kiln-cpu-{i}"))
        .spawn(move || worker(&s))
    {
        Ok(h) => {
            handles.push(h);
            true
        }
        Err(_) => false,
    }
}

/// Asks the page for a Web Worker that calls [`web_worker_entry`] with a
/// reference to the pool's shared state.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics", feature = "web"))]
fn spawn(_i: usize, shared: &Arc<Shared>, _handles: &mut Vec<std::thread::JoinHandle<()>>) -> bool {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen(raw_module = "./pool.js")]
    extern "C" {
        #[wasm_bindgen(js_name = spawnPoolWorker, catch)]
        fn spawn_pool_worker(module: JsValue, memory: JsValue, state: u32) -> Result<(), JsValue>;
    }
    let state = Arc::into_raw(shared.clone());
    match spawn_pool_worker(wasm_bindgen::module(), wasm_bindgen::memory(), state as u32) {
        Ok(()) => true,
        Err(e) => {
            web_sys::console::error_2(&"kiln: starting a CPU worker thread failed:".into(), &e);
            // SAFETY: the worker was not created, so this is the only use of
            // the reference handed out above.
            drop(unsafe { Arc::from_raw(state) });
            false
        }
    }
}

/// No threads in this build (wasm32 without atomics).
#[cfg(all(
    target_arch = "wasm32",
    not(all(target_feature = "atomics", feature = "web"))
))]
fn spawn(
    _i: usize,
    _shared: &Arc<Shared>,
    _handles: &mut Vec<std::thread::JoinHandle<()>>,
) -> bool {
    false
}

/// A Web Worker's body: runs pool jobs until the pool is dropped. `state`
/// is the reference `spawn` handed to `crate/js/pool.js`.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics", feature = "web"))]
pub fn web_worker_entry(state: u32) {
    // SAFETY: `state` came from `Arc::into_raw` in `spawn`, once per worker,
    // and pool.js calls this once with it.
    let s = unsafe { Arc::from_raw(state as *const Shared) };
    worker(&s);
}

fn worker(s: &Shared) {
    // The epoch is read before checking in, so a job posted after the
    // caller sees every worker started is one this worker waits for.
    let mut seen = s.epoch.load(Ordering::Acquire);
    s.started.fetch_add(1, Ordering::Release);
    loop {
        // Spin for the next job, then park until one is posted.
        let mut idle = Idle::new();
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if s.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            if idle.tired() {
                let g = s.park.lock().unwrap_or_else(|e| e.into_inner());
                if s.epoch.load(Ordering::Acquire) == seen && !s.stop.load(Ordering::Acquire) {
                    let _ = s.wake.wait_timeout(g, Duration::from_millis(100));
                }
            } else {
                std::hint::spin_loop();
            }
        }
        seen = s.epoch.load(Ordering::Acquire);
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, f)) = job
            && catch_unwind(AssertUnwindSafe(|| claim(s, n, f))).is_err()
        {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

/// Spin accounting between jobs: `tired` once a worker has spun for about
/// `SPIN` (by the clock natively, by count where there is none).
struct Idle {
    spins: u32,
    #[cfg(not(target_arch = "wasm32"))]
    start: std::time::Instant,
}

impl Idle {
    fn new() -> Idle {
        Idle {
            spins: 0,
            #[cfg(not(target_arch = "wasm32"))]
            start: std::time::Instant::now(),
        }
    }

    fn tired(&mut self) -> bool {
        self.spins = self.spins.wrapping_add(1);
        if !self.spins.is_multiple_of(1024) {
            return false;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.start.elapsed() > SPIN
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.spins / 1024 >= SPIN_ROUNDS
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _g = self.shared.park.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        let pool = Pool::new(3).unwrap();
        for n in [0, 1, 2, 5, 64, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            assert!(pool.run(n, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            }));
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n={n}");
        }
    }

    #[test]
    fn parked_workers_wake_for_the_next_job() {
        let pool = Pool::new(2).unwrap();
        std::thread::sleep(SPIN * 3);
        let sum = AtomicUsize::new(0);
        assert!(pool.run(100, &|t| {
            sum.fetch_add(t, Ordering::Relaxed);
        }));
        assert_eq!(sum.load(Ordering::Relaxed), 4950);
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_still_works() {
        let pool = Pool::new(2).unwrap();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let ok = pool.run(8, &|t| assert!(t != 5));
        std::panic::set_hook(prev);
        assert!(!ok);
        assert!(pool.run(8, &|_| {}));
    }
}
