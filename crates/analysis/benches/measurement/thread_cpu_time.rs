//! A criterion [`Measurement`] on the benchmark thread's own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), reported as time per iteration and, with a byte throughput,
//! as microseconds per KiB (the unit of issue 20's budget).
//!
//! Why: on a shared two-core machine wall time counts the time the thread waits for a core
//! while other builders run; the thread's CPU time counts only the time it ran. It still
//! carries what sharing does to caches and to the core's speed, so it is a steadier figure,
//! not a quiet machine's one: read it beside wall time and the load average.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// The calling thread's CPU time so far.
pub fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Criterion measurement on the thread's CPU clock.
pub struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &PerKibFormatter
    }
}

/// Nanoseconds as µs or ms of CPU; a byte throughput as µs of CPU per KiB.
pub struct PerKibFormatter;

impl ValueFormatter for PerKibFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (amount, unit) = match *throughput {
            Throughput::Bytes(b) => (b as f64 / 1024.0, "µs cpu/KiB"),
            Throughput::BytesDecimal(b) => (b as f64 / 1000.0, "µs cpu/kB"),
            Throughput::Elements(e) => (e as f64, "µs cpu/elem"),
        };
        for v in values {
            *v = *v / 1e3 / amount.max(f64::MIN_POSITIVE);
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
