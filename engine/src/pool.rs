//! A persistent worker pool, created once per session.
//!
//! `run(n_tasks, f)` hands task indices `0..n_tasks` to the calling thread and the
//! workers through one atomic counter; it returns when every task is done. A call
//! allocates nothing, so the forward pass stays allocation-free.
//!
//! Waiting: a forward pass issues a few `run` calls per layer with only microseconds
//! between them, and the threads of one call rarely finish at the same instant (a
//! GEMM's last panel chunk takes ~100 µs). A thread that blocks on the condition
//! variable costs a futex wake-up when the next job comes: 30 µs at the median and up
//! to 200 µs in a VM (measured), paid dozens of times per pass. So while a forward pass
//! holds the pool ([`Pool::hold`]) every waiting thread spins (with the `pause` hint)
//! for up to [`HOT_SPIN`]; outside a pass it spins for at most [`SPIN`] and then
//! blocks. Between requests workers are therefore parked: an idle session burns no
//! CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a thread spins for the next job (or for the workers to finish) before it
/// blocks, outside a [`Pool::hold`].
pub const SPIN: Duration = Duration::from_micros(50);
/// The same inside a [`Pool::hold`]: longer than any gap between two jobs of a forward
/// pass, short enough that a pass stalled on something else does not burn a core for
/// long.
pub const HOT_SPIN: Duration = Duration::from_millis(10);
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Task<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// A job as the workers see it: a lifetime-erased pointer to the caller's closure.
#[derive(Clone, Copy)]
struct Job {
    f: *const Task<'static>,
    n_tasks: usize,
}

// SAFETY: the closure is `Sync`, and `run` does not return (so the closure outlives
// every use) until all workers have reported the job finished.
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    generation: u64,
    busy: usize,
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    next: AtomicUsize,
    /// Mirrors `State::generation`, for spinning without the lock.
    generation: AtomicU64,
    /// Mirrors `State::busy`.
    busy: AtomicUsize,
    /// Live [`Hold`]s: while nonzero, waiting threads spin up to [`HOT_SPIN`].
    hot: AtomicUsize,
}

/// Spins until `ready()`, or until [`SPIN`] elapsed ([`HOT_SPIN`] while the pool is
/// held); returns whether it became ready.
fn spin_until(hot: &AtomicUsize, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let waited = start.elapsed();
        if waited > SPIN && (hot.load(Ordering::Relaxed) == 0 || waited > HOT_SPIN) {
            return ready();
        }
    }
}

/// A forward pass in progress: see [`Pool::hold`].
pub struct Hold<'a>(&'a Shared);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.hot.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pool. `threads` counts the calling thread too: a pool of 1 runs inline.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
    id: usize,
}

impl Pool {
    /// A pool of `threads` (≥ 1) threads including the caller.
    ///
    /// # Errors
    /// When the OS refuses to spawn a thread.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { job: None, generation: 0, busy: 0, panicked: false, shutdown: false }),
            work: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            hot: AtomicUsize::new(0),
        });
        static POOLS: AtomicUsize = AtomicUsize::new(0);
        let id = POOLS.fetch_add(1, Ordering::Relaxed);
        let mut handles = Vec::with_capacity(threads - 1);
        for w in 1..threads {
            let s = Arc::clone(&shared);
            // Short names (the OS keeps 15 bytes): pool id and worker index.
            let name = format!("{}{w}", thread_prefix(id));
            handles.push(std::thread::Builder::new().name(name).spawn(move || worker(&s, w))?);
        }
        Ok(Pool { shared, handles, threads, id })
    }

    /// Name prefix of this pool's worker threads (followed by the worker index), for
    /// profilers and `/proc` inspection.
    pub fn thread_name_prefix(&self) -> String {
        thread_prefix(self.id)
    }

    /// Marks a burst of `run` calls (one forward pass): until the returned guard drops,
    /// threads waiting for the next job or for the end of one spin instead of blocking
    /// (see the module docs). Holding it between requests would burn the workers' cores.
    pub fn hold(&self) -> Hold<'_> {
        self.shared.hot.fetch_add(1, Ordering::Relaxed);
        Hold(&self.shared)
    }

    /// Threads including the caller.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(task, worker)` for every `task` in `0..n_tasks`; `worker` is in
    /// `0..threads()` and unique among concurrently running calls (for scratch buffers).
    ///
    /// # Panics
    /// Re-raises (as a new panic) a panic of any task.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if self.threads == 1 || n_tasks <= 1 {
            for t in 0..n_tasks {
                f(t, 0);
            }
            return;
        }
        // SAFETY: only the lifetime is erased; see `Job`.
        let f_static: *const Task<'static> = unsafe { std::mem::transmute::<*const Task<'_>, *const Task<'static>>(f) };
        {
            let mut st = lock(&self.shared.state);
            self.shared.next.store(0, Ordering::Relaxed);
            st.job = Some(Job { f: f_static, n_tasks });
            st.generation = st.generation.wrapping_add(1);
            st.busy = self.threads - 1;
            st.panicked = false;
            self.shared.busy.store(self.threads - 1, Ordering::Release);
            self.shared.generation.store(st.generation, Ordering::Release);
        }
        self.shared.work.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| drain(&self.shared, f, n_tasks, 0)));
        spin_until(&self.shared.hot, || self.shared.busy.load(Ordering::Acquire) == 0);
        let mut st = lock(&self.shared.state);
        while st.busy > 0 {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.job = None;
        let panicked = st.panicked;
        drop(st);
        if mine.is_err() || panicked {
            panic!("a toprt worker task panicked");
        }
    }
}

/// Worker thread names are this prefix plus the worker index.
fn thread_prefix(id: usize) -> String {
    format!("toprt-p{}w", id % 10_000)
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn drain(shared: &Shared, f: &(dyn Fn(usize, usize) + Sync), n_tasks: usize, worker: usize) {
    loop {
        let t = shared.next.fetch_add(1, Ordering::Relaxed);
        if t >= n_tasks {
            break;
        }
        f(t, worker);
    }
}

fn worker(shared: &Shared, id: usize) {
    let mut seen = 0u64;
    loop {
        spin_until(&shared.hot, || shared.generation.load(Ordering::Acquire) != seen);
        let job = {
            let mut st = lock(&shared.state);
            while !st.shutdown && (st.generation == seen || st.job.is_none()) {
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            st.job
        };
        if let Some(job) = job {
            // SAFETY: `run` keeps the closure alive until `busy` reaches 0 below.
            let f = unsafe { &*job.f };
            let ok = catch_unwind(AssertUnwindSafe(|| drain(shared, f, job.n_tasks, id))).is_ok();
            let mut st = lock(&shared.state);
            st.panicked |= !ok;
            st.busy -= 1;
            shared.busy.store(st.busy, Ordering::Release);
            if st.busy == 0 {
                shared.done.notify_one();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.work.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once() {
        let pool = Pool::new(3).unwrap();
        for n in [0, 1, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n, &|t, w| {
                assert!(w < 3);
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    /// CPU ticks (user + system) used so far by the threads whose name starts with `prefix`.
    #[cfg(target_os = "linux")]
    fn cpu_ticks(prefix: &str) -> (usize, u64) {
        let mut n = 0;
        let mut ticks = 0;
        for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if !comm.trim().starts_with(prefix) {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            ticks += f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            n += 1;
        }
        (n, ticks)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_workers_burn_no_cpu() {
        let pool = Pool::new(3).unwrap();
        let busy = AtomicUsize::new(0);
        pool.run(64, &|_, _| {
            busy.fetch_add(1, Ordering::Relaxed);
        });
        let prefix = pool.thread_name_prefix();
        let (n, before) = cpu_ticks(&prefix);
        assert_eq!(n, 2, "expected the pool's 2 workers");
        std::thread::sleep(Duration::from_millis(600));
        let (_, after) = cpu_ticks(&prefix);
        // Spinning 600 ms on two threads would be ~120 ticks at 100 Hz; parked is ~0.
        assert!(after - before <= 3, "idle workers used {} CPU ticks in 600 ms", after - before);
    }

    /// A hold makes waiting workers spin, but only up to HOT_SPIN: a pass that stalls
    /// (or a hold kept by mistake) does not burn the cores; after the hold they park.
    #[cfg(target_os = "linux")]
    #[test]
    fn held_workers_spin_at_most_hot_spin_then_park() {
        let pool = Pool::new(3).unwrap();
        let prefix = pool.thread_name_prefix();
        let hold = pool.hold();
        pool.run(64, &|_, _| {});
        let (_, before) = cpu_ticks(&prefix);
        std::thread::sleep(Duration::from_millis(600));
        let (_, after) = cpu_ticks(&prefix);
        // Two workers spinning for all 600 ms would be ~120 ticks; HOT_SPIN is 10 ms each.
        assert!(after - before <= 6, "held idle workers used {} CPU ticks in 600 ms", after - before);
        drop(hold);
        pool.run(64, &|_, _| {});
        let (_, before) = cpu_ticks(&prefix);
        std::thread::sleep(Duration::from_millis(600));
        let (_, after) = cpu_ticks(&prefix);
        assert!(after - before <= 3, "released idle workers used {} CPU ticks in 600 ms", after - before);
    }

    #[test]
    fn panic_in_task_propagates_and_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(10, &|t, _| assert!(t != 5))));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(10, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
