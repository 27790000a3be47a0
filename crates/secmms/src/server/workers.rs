//! The association threads of `server.worker_threads`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The threads that run associations when `server.worker_threads` asks for dedicated ones: each
/// runs a single-threaded tokio runtime, so an association's socket, timers and task live on one
/// thread that owns its I/O driver, and no other thread is woken when its input arrives.
/// Dropping the pool stops the threads, which ends the associations they run.
pub(super) struct Workers {
    threads: Vec<Worker>,
    next: usize,
}

struct Worker {
    handle: tokio::runtime::Handle,
    /// Associations (and connections being set up) on this thread.
    active: Arc<AtomicU64>,
    /// Dropped with the pool: the thread's runtime then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Workers {
    pub(super) fn start(n: usize) -> std::io::Result<Workers> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("secmms-assoc-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("association thread ended at start"))??;
            threads.push(Worker {
                handle,
                active: Arc::new(AtomicU64::new(0)),
                _stop: stop,
            });
        }
        Ok(Workers { threads, next: 0 })
    }

    /// The thread serving the fewest connections (round robin among equals), and its counter.
    pub(super) fn pick(&mut self) -> (&tokio::runtime::Handle, Arc<AtomicU64>) {
        let n = self.threads.len();
        let mut best = self.next % n;
        for k in 1..n {
            let i = (self.next + k) % n;
            if self.threads[i].active.load(Ordering::Relaxed)
                < self.threads[best].active.load(Ordering::Relaxed)
            {
                best = i;
            }
        }
        self.next = best + 1;
        let w = &self.threads[best];
        (&w.handle, w.active.clone())
    }
}

/// Decrements a worker's association count when the association's task ends.
pub(super) struct Active(pub(super) Arc<AtomicU64>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// CPUs this process may run on now (its affinity and quota; 1 when unknown).
pub(super) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `server.worker_threads`: absent = one per CPU (the daemon's tuning; an embedded server has
/// it resolved to 0 at bind), 0 = none (associations run on the runtime that runs the server).
pub(super) fn worker_count(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(cpus)
}
