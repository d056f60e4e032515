//! Resident memory of a process, read from `/proc/<pid>/status` (Linux).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The process's resident set size (`VmRSS`) in KiB, or `None` when it cannot be read (no such
/// process, not Linux, or a kernel thread).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` value of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    matches!(words.next(), Some("kB") | None).then_some(value)
}

/// What a [`RssSampler`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RssStats {
    /// The first sample, taken when sampling started.
    pub start: Option<u64>,
    /// The largest sample.
    pub peak: Option<u64>,
    /// How many samples were read.
    pub samples: u64,
}

impl RssStats {
    fn add(&mut self, kib: u64) {
        self.start.get_or_insert(kib);
        self.peak = Some(self.peak.map_or(kib, |p| p.max(kib)));
        self.samples += 1;
    }
}

/// Samples a process's resident memory on a background thread every [`RssSampler::INTERVAL`]
/// (and once at start and at stop) until stopped.
pub struct RssSampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<RssStats>,
}

impl RssSampler {
    /// Time between two samples.
    pub const INTERVAL: Duration = Duration::from_millis(20);

    /// Starts sampling `pid`; the first sample is read before this returns.
    pub fn start(pid: u32) -> RssSampler {
        let mut stats = RssStats::default();
        if let Some(kib) = rss_kib(pid) {
            stats.add(kib);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("rss-{pid}"))
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(RssSampler::INTERVAL),
                        Err(RecvTimeoutError::Timeout)
                    );
                    if let Some(kib) = rss_kib(pid) {
                        stats.add(kib);
                    }
                    if last {
                        return stats;
                    }
                }
            })
            .expect("spawning the RSS sampling thread");
        RssSampler { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns what was seen.
    pub fn stop(self) -> RssStats {
        // The thread may have gone already only by panicking, which `join` reports.
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tnginx\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let own = std::process::id();
        assert!(rss_kib(own).is_some_and(|k| k > 0));
        let sampler = RssSampler::start(own);
        let grown = vec![1u8; 8 << 20];
        thread::sleep(RssSampler::INTERVAL * 3);
        let stats = sampler.stop();
        drop(grown);
        assert!(stats.samples >= 2, "{stats:?}");
        assert!(stats.start.unwrap() <= stats.peak.unwrap());
    }

    #[test]
    fn missing_process_gives_nothing() {
        assert_eq!(rss_kib(u32::MAX), None);
        let stats = RssSampler::start(u32::MAX).stop();
        assert_eq!(stats.peak, None);
    }
}
