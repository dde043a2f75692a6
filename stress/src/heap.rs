//! Live-heap accounting: the counterpart of GHC's `-M` heap limit in grapesy's test.
//!
//! [`CountingAllocator`] wraps the system allocator and keeps the bytes currently
//! allocated and the peak. The `grpc-stress` binary installs it as its global
//! allocator; a child started by the driver prints its live heap on stdout every
//! `--report-heap` interval (a line the driver parses) and exits with
//! [`HEAP_OVERFLOW_EXIT`] if it ever exceeds `--max-heap`. In-process tests do not
//! install it, and read zeros.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Exit code of a process whose live heap exceeded `--max-heap`.
pub const HEAP_OVERFLOW_EXIT: i32 = 251;
/// Prefix of the heap report lines a child prints on stdout.
pub const REPORT_PREFIX: &str = "grpc-stress-heap";

/// The system allocator, counting live bytes.
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the counters are plain atomics and never affect
// what is allocated. This is the one `unsafe` in the workspace: a global allocator
// cannot be written without it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as-is (see above).
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            add(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as-is.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            add(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as-is.
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as-is.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            add(new_size);
        }
        moved
    }
}

fn add(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    // A plain load first: the peak rarely moves, and a read-modify-write on every
    // allocation costs a locked instruction each time.
    if live > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

/// Bytes allocated and not yet freed (0 when the counting allocator is not installed).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The highest [`live_bytes`] seen.
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Reports the heap on stdout every `interval` and exits the process with
/// [`HEAP_OVERFLOW_EXIT`] when it exceeds `limit`. Runs on its own thread so an
/// overloaded runtime cannot delay the check.
pub fn spawn_reporter(interval: Duration, limit: Option<u64>) {
    std::thread::Builder::new()
        .name("heap-reporter".into())
        .spawn(move || {
            use std::io::Write;
            loop {
                let live = live_bytes() as u64;
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{REPORT_PREFIX} {live} {}", peak_bytes());
                let _ = stdout.flush();
                drop(stdout);
                if let Some(limit) = limit
                    && live > limit
                {
                    eprintln!("heap overflow: live heap {live} bytes exceeds --max-heap {limit} bytes");
                    std::process::exit(HEAP_OVERFLOW_EXIT);
                }
                std::thread::sleep(interval);
            }
        })
        .expect("spawning the heap reporter");
}

/// A deliberate leak for testing leak detection: keeps `bytes_per_second` more bytes
/// alive every second, forever. Hidden behind a debug option.
pub fn spawn_debug_leak(bytes_per_second: u64) {
    std::thread::Builder::new()
        .name("debug-leak".into())
        .spawn(move || {
            let mut kept: Vec<Vec<u8>> = Vec::new();
            let per_tick = (bytes_per_second / 10).max(1) as usize;
            loop {
                kept.push(vec![1u8; per_tick]);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .expect("spawning the debug leak");
}
