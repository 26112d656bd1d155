//! Shared by the fuzz targets: a counting global allocator that enforces
//! the memory bound of a loader — parsing an N-byte input must never hold
//! more than `BASE + PER_BYTE·N` bytes at once (metadata counts and lengths
//! must not amplify a small file into a large allocation).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BASE: usize = 64 << 20;
pub const PER_BYTE: usize = 16;

pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

/// Phases a target passed, each with the peak reached by then (growth over
/// the start), so a bound violation names the phase that made it.
static PHASES: std::sync::Mutex<Vec<(&'static str, usize)>> = std::sync::Mutex::new(Vec::new());
static START: AtomicUsize = AtomicUsize::new(0);

/// Marks the end of a phase of the current input (see [`bounded`]).
#[allow(dead_code)]
pub fn phase(name: &'static str) {
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(START.load(Ordering::Relaxed));
    if let Ok(mut p) = PHASES.lock() {
        p.push((name, grew));
    }
}

/// Runs `f` on an input of `n` bytes and panics (a fuzz finding) if the
/// bytes held at once grew past the bound; the message lists the peak after
/// each [`phase`] the input passed.
pub fn bounded(n: usize, f: impl FnOnce()) {
    if let Ok(mut p) = PHASES.lock() {
        p.clear();
        p.reserve(16);
    }
    let start = CURRENT.load(Ordering::Relaxed);
    START.store(start, Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    f();
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    let limit = BASE + PER_BYTE * n;
    if grew > limit {
        let phases = PHASES.lock().map(|p| format!("{p:?}")).unwrap_or_default();
        panic!("{grew} bytes held for a {n}-byte input (bound {limit}); peak after each phase: {phases}");
    }
}
