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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
    park: Mutex<()>,
    wake: Condvar,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Serializes callers (one job at a time).
    gate: Mutex<()>,
}

/// How long a worker spins for the next job before parking.
const SPIN: Duration = Duration::from_millis(2);

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
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::new();
        for i in 1..threads {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("kiln-cpu-{i}"))
                .spawn(move || worker(&s))
                .ok()?;
            workers.push(h);
        }
        Some(Pool {
            shared,
            workers,
            gate: Mutex::new(()),
        })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(task)` for every task in `0..n` on the caller and the
    /// workers. False if a task panicked (a bug: kernels do not panic).
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
        if self.workers.is_empty() || n <= 1 {
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
        while s.done.load(Ordering::Acquire) < self.workers.len() {
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

fn worker(s: &Shared) {
    let mut seen = 0usize;
    loop {
        // Spin for the next job, then park until one is posted.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if s.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            spins += 1;
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN {
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

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _g = self.shared.park.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
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
