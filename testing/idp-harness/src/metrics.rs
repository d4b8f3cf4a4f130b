//! Reading what the code under test reported through the `metrics` facade.
//!
//! A [`MetricsCapture`] holds a `metrics-util` debugging recorder installed *per thread* (never
//! process-wide), so tests running side by side in one binary do not see each other's counts:
//!
//! * current-thread tests (`#[tokio::test]`): [`MetricsCapture::install`] on the test thread;
//!   every task of that runtime runs there;
//! * multi-thread tests: [`MetricsCapture::block_on`] runs the future on a runtime whose worker
//!   threads all record into the capture.
//!
//! Counts accumulate across reads (the debugging recorder resets on each snapshot; the capture
//! adds them up), so a test can read a counter, act, and read it again.
//!
//! ```
//! use mcp_auth_idp_harness::metrics::MetricsCapture;
//! let m = MetricsCapture::new();
//! {
//!     let _g = m.install();
//!     metrics::counter!("demo_total", "result" => "hit").increment(2);
//! }
//! metrics::counter!("demo_total", "result" => "hit").increment(5); // not installed: not seen
//! assert_eq!(m.counter("demo_total", &[("result", "hit")]), 2);
//! assert_eq!(m.counter("demo_total", &[("result", "miss")]), 0);
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use metrics::LocalRecorderGuard;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// One series: metric name and its labels (sorted).
type Series = (String, Vec<(String, String)>);

/// A recorder for one test and the totals it has seen so far.
pub struct MetricsCapture {
    /// Leaked (a few hundred bytes per test) so worker threads can hold it for their lifetime.
    recorder: &'static DebuggingRecorder,
    snapshotter: Snapshotter,
    counters: Mutex<HashMap<Series, u64>>,
    histograms: Mutex<HashMap<Series, usize>>,
}

impl std::fmt::Debug for MetricsCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.collect();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("MetricsCapture")
            .field("counters", &*counters)
            .finish_non_exhaustive()
    }
}

impl Default for MetricsCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsCapture {
    /// An empty capture, not installed anywhere yet.
    pub fn new() -> Self {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        MetricsCapture {
            snapshotter: recorder.snapshotter(),
            recorder,
            counters: Mutex::default(),
            histograms: Mutex::default(),
        }
    }

    /// Records what this thread reports until the guard is dropped.
    pub fn install(&self) -> LocalRecorderGuard<'static> {
        metrics::set_default_local_recorder(self.recorder)
    }

    /// Runs `fut` to completion on a new multi-thread runtime (`worker_threads` workers, timers
    /// and I/O on) whose threads, and the calling thread, all record into this capture.
    pub fn block_on<F: Future>(&self, worker_threads: usize, fut: F) -> F::Output {
        let recorder = self.recorder;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .on_thread_start(move || {
                // The thread records here for the rest of its life (it ends with the runtime).
                std::mem::forget(metrics::set_default_local_recorder(recorder));
            })
            .build()
            .expect("a tokio runtime");
        let _guard = self.install();
        rt.block_on(fut)
    }

    /// The sum of the counter `name` over every series whose labels include all of `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.collect();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters
            .iter()
            .filter(|((n, l), _)| n == name && matches(l, labels))
            .map(|(_, v)| *v)
            .sum()
    }

    /// How many values the histogram `name` received over every series matching `labels`.
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.collect();
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        histograms
            .iter()
            .filter(|((n, l), _)| n == name && matches(l, labels))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Adds what the recorder saw since the last read to the totals.
    fn collect(&self) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let k = key.key();
            let mut labels: Vec<(String, String)> = k
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let series = (k.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *counters.entry(series).or_default() += n,
                DebugValue::Histogram(v) => *histograms.entry(series).or_default() += v.len(),
                DebugValue::Gauge(_) => {}
            }
        }
    }
}

fn matches(have: &[(String, String)], want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
}
