//! Parallel loops over index ranges on the backend's pool, and a shared
//! output slice that tasks write at disjoint indices.

use std::marker::PhantomData;
use std::ops::Range;

use super::pool::Pool;
use crate::backend::BackendError;

#[derive(Clone, Copy)]
pub(crate) struct Par<'a> {
    pool: Option<&'a Pool>,
}

impl<'a> Par<'a> {
    pub fn new(pool: Option<&'a Pool>) -> Par<'a> {
        Par { pool }
    }

    pub fn threads(&self) -> usize {
        self.pool.map_or(1, |p| p.threads())
    }

    /// A chunk size that splits `n` items into about four tasks per thread,
    /// at least `min` items each.
    pub fn chunk(&self, n: usize, min: usize) -> usize {
        n.div_ceil(4 * self.threads()).max(min).max(1)
    }

    /// Calls `f` on consecutive ranges of `chunk` items covering `0..n`,
    /// in parallel where there is a pool and more than one range.
    pub fn ranges(
        &self,
        n: usize,
        chunk: usize,
        f: impl Fn(Range<usize>) + Sync,
    ) -> Result<(), BackendError> {
        let chunk = chunk.max(1);
        let tasks = n.div_ceil(chunk);
        let task = |c: usize| f(c * chunk..((c + 1) * chunk).min(n));
        let ok = match self.pool {
            Some(pool) => pool.run(tasks, &task),
            None => {
                (0..tasks).for_each(task);
                true
            }
        };
        if ok {
            Ok(())
        } else {
            Err(BackendError::Validation(
                "a CPU kernel task panicked".into(),
            ))
        }
    }
}

impl Par<'_> {
    /// [`Par::ranges`] with one task per item of `0..n`, each fallible:
    /// the first failing item's error (with its message) is returned.
    pub fn try_each(
        &self,
        n: usize,
        f: impl Fn(usize) -> Result<(), BackendError> + Sync,
    ) -> Result<(), BackendError> {
        let failure = std::sync::Mutex::new(None);
        self.ranges(n, 1, |r| {
            for i in r {
                if let Err(e) = f(i)
                    && let Ok(mut first) = failure.lock()
                {
                    first.get_or_insert(e);
                }
            }
        })?;
        match failure.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// A mutable slice that parallel tasks write through at indices no other
/// task writes (each task owns a disjoint set of output elements).
pub(crate) struct Shared<'a, T> {
    ptr: *mut T,
    len: usize,
    _life: PhantomData<&'a mut [T]>,
}

// SAFETY: tasks write disjoint elements (callers partition the indices), and
// the slice outlives the parallel loop that borrows it.
unsafe impl<T: Send> Send for Shared<'_, T> {}
unsafe impl<T: Send> Sync for Shared<'_, T> {}

impl<'a, T: Copy> Shared<'a, T> {
    pub fn new(s: &'a mut [T]) -> Shared<'a, T> {
        Shared {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _life: PhantomData,
        }
    }

    /// Writes element `i` (ignored past the end, which callers never reach:
    /// their indices come from the same shapes that sized the slice).
    #[inline]
    pub fn set(&self, i: usize, v: T) {
        if i < self.len {
            // SAFETY: in bounds; no other task writes index `i`.
            unsafe { *self.ptr.add(i) = v }
        }
    }

    /// Elements `start..start + len` as a slice (empty past the end), for
    /// loops that vectorize.
    ///
    /// # Safety
    /// No other task reads or writes these elements while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)] // disjoint ranges per task: what Shared is for
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        if start.checked_add(len).is_none_or(|e| e > self.len) {
            return &mut [];
        }
        // SAFETY: in bounds; the caller owns the range exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// Reads element `i`, which this task wrote earlier (NaN past the end).
    #[inline]
    pub fn get(&self, i: usize) -> T
    where
        T: From<f32>,
    {
        if i < self.len {
            // SAFETY: in bounds; only this task writes index `i`.
            unsafe { *self.ptr.add(i) }
        } else {
            T::from(f32::NAN)
        }
    }
}
