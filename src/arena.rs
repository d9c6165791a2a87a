//! The one-shot `lb-feedback`'s allocator: a process that answers one poll and exits has
//! nothing to give back to a heap, so memory comes from a fixed arena by moving an offset
//! (a compare-and-swap), and only a full arena sends requests on to the system allocator.
//! glibc's malloc and free cost a probe 12 k instructions over its 56 allocations
//! (docs/BENCHMARKS.md). Freeing the latest block hands it back, which the temporary
//! strings of a probe mostly are; other frees leave their bytes unused until exit, which
//! the arena's size bounds. `lb-feedback-service` runs for years and keeps the system's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `N` bytes handed out from the front; zero-initialised, so a static one is in `.bss` and
/// costs nothing until its pages are touched.
pub struct Arena<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
    /// How many bytes from the front are handed out.
    used: AtomicUsize,
}

// SAFETY: threads share the arena only through `used`, whose compare-and-swap gives each
// allocation a range no other live allocation overlaps.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Arena<N> {
        Arena {
            bytes: UnsafeCell::new([0; N]),
            used: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    fn holds(&self, ptr: *mut u8) -> bool {
        (self.base()..self.base() + N).contains(&(ptr as usize))
    }

    /// A block of `layout` from the arena, or null when it does not fit.
    fn take(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            // Aligned as an address, not as an offset: the arena itself is aligned to 1.
            let Some(start) = (base + used)
                .checked_next_multiple_of(layout.align())
                .map(|at| at - base)
            else {
                return std::ptr::null_mut();
            };
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= N => end,
                _ => return std::ptr::null_mut(),
            };
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::AcqRel, Ordering::Relaxed)
            {
                // SAFETY: start + size <= N: the block is inside the arena.
                Ok(_) => return unsafe { self.bytes.get().cast::<u8>().add(start) },
                Err(now) => used = now,
            }
        }
    }

    /// Hands `size` bytes at `ptr` back when they are the latest handed out; `false` when
    /// something came after them (they stay unused).
    fn give_back(&self, ptr: *mut u8, size: usize) -> bool {
        let start = ptr as usize - self.base();
        self.used
            .compare_exchange(start + size, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Grows or shrinks the latest block where it is; `false` when it is not the latest or
    /// the arena cannot hold the new size.
    fn resize_in_place(&self, ptr: *mut u8, size: usize, new_size: usize) -> bool {
        let start = ptr as usize - self.base();
        match start.checked_add(new_size) {
            Some(end) if end <= N => self
                .used
                .compare_exchange(start + size, end, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
            _ => false,
        }
    }
}

// SAFETY: every block handed out is inside the arena and overlaps no other live block (see
// `take`), or comes from `System`, to which blocks outside the arena go back.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            // SAFETY: the caller's layout has a non-zero size, as GlobalAlloc requires.
            ptr if ptr.is_null() => unsafe { System.alloc(layout) },
            ptr => ptr,
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.holds(ptr) {
            self.give_back(ptr, layout.size());
        } else {
            // SAFETY: a block outside the arena came from System.alloc with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.holds(ptr) {
            // SAFETY: a block outside the arena came from System with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A block that shrinks stays where it is: the latest one hands its tail back, any
        // other keeps bytes it no longer uses, which a copy elsewhere would only add to.
        if self.resize_in_place(ptr, layout.size(), new_size) || new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees the new layout is valid (GlobalAlloc::realloc).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: new_size is non-zero (GlobalAlloc::realloc's contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_and_apart_and_the_latest_goes_back() {
        let arena = Box::new(Arena::<4096>::new());
        unsafe {
            let a = arena.alloc(layout(3, 1));
            let b = arena.alloc(layout(16, 16));
            assert!(arena.holds(a) && arena.holds(b));
            assert_eq!(b as usize % 16, 0);
            assert!(b as usize >= a as usize + 3);
            b.write_bytes(0xab, 16);
            assert_eq!(*a.add(2), 0, "writing b touched a");
            // a is not the latest: its bytes stay taken; b is, and comes back.
            arena.dealloc(a, layout(3, 1));
            let used = arena.used.load(Ordering::Relaxed);
            arena.dealloc(b, layout(16, 16));
            assert_eq!(arena.used.load(Ordering::Relaxed), used - 16);
            assert_eq!(arena.alloc(layout(16, 16)), b);
        }
    }

    #[test]
    fn a_full_arena_hands_on_to_the_system_allocator() {
        let arena = Box::new(Arena::<64>::new());
        unsafe {
            let inside = arena.alloc(layout(60, 1));
            let outside = arena.alloc(layout(8, 8));
            assert!(arena.holds(inside) && !arena.holds(outside));
            outside.write_bytes(1, 8);
            // Growing a block from the system stays with the system.
            let grown = arena.realloc(outside, layout(8, 8), 4096);
            assert!(!arena.holds(grown));
            assert_eq!(*grown.add(7), 1);
            arena.dealloc(grown, layout(4096, 8));
            // Too big for the arena at all.
            let big = arena.alloc(layout(1 << 20, 8));
            assert!(!big.is_null() && !arena.holds(big));
            arena.dealloc(big, layout(1 << 20, 8));
        }
    }

    #[test]
    fn the_latest_block_grows_in_place_and_others_move_with_their_bytes() {
        let arena = Box::new(Arena::<4096>::new());
        unsafe {
            let a = arena.alloc(layout(8, 8));
            a.write_bytes(7, 8);
            let grown = arena.realloc(a, layout(8, 8), 100);
            assert_eq!(grown, a, "the latest block grows where it is");
            let b = arena.alloc(layout(8, 8));
            let used = arena.used.load(Ordering::Relaxed);
            assert_eq!(arena.realloc(grown, layout(100, 8), 50), grown);
            assert_eq!(
                arena.used.load(Ordering::Relaxed),
                used,
                "shrunk where it is"
            );
            let moved = arena.realloc(grown, layout(50, 8), 200);
            assert_ne!(moved, a);
            assert!(moved as usize > b as usize);
            assert_eq!(std::slice::from_raw_parts(moved, 8), &[7; 8]);
            // Past the end of the arena: to the system, bytes and all.
            let huge = arena.realloc(moved, layout(200, 8), 8192);
            assert!(!arena.holds(huge));
            assert_eq!(std::slice::from_raw_parts(huge, 8), &[7; 8]);
            arena.dealloc(huge, layout(8192, 8));
        }
    }

    #[test]
    fn threads_get_blocks_that_do_not_overlap() {
        let arena: &'static Arena<{ 1 << 16 }> = Box::leak(Box::new(Arena::new()));
        let blocks: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u8)
                .map(|id| {
                    scope.spawn(move || {
                        (0..200)
                            .map(|_| unsafe {
                                let ptr = arena.alloc(layout(24, 8));
                                ptr.write_bytes(id, 24);
                                ptr as usize
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<usize> = blocks.iter().flatten().copied().collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|pair| pair[1] - pair[0] >= 24));
        for (id, mine) in blocks.iter().enumerate() {
            for ptr in mine {
                let bytes = unsafe { std::slice::from_raw_parts(*ptr as *const u8, 24) };
                assert!(bytes.iter().all(|b| usize::from(*b) == id));
            }
        }
    }
}
