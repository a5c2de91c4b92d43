//! Replay paced by event time.
//!
//! The gap between two ticks is the gap between their timestamps divided by the speed. Every
//! tick's due instant is computed from the first tick (`start + (ts - ts0) / speed`), never
//! from the previous one, so sleeping late once does not delay everything after it: the
//! replay keeps to its clock over any length of run.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Replay speed: a factor of real time, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// No waiting at all.
    Max,
    /// Event time runs this many times faster than real time (1 = real time).
    Factor(f64),
}

impl Default for Speed {
    fn default() -> Self {
        Speed::Factor(1.0)
    }
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "speed {s:?}: expected a factor > 0 (1 = real time, 100 = 100 times faster) or max"
            )),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}x"),
        }
    }
}

/// Longest single sleep, so that a stop request is seen promptly even during long gaps.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

/// Waits until each tick is due.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: Speed,
    /// The first tick's event time and the instant it was released.
    origin: Option<(i64, Instant)>,
}

impl Pacer {
    pub fn new(speed: Speed) -> Self {
        Self {
            speed,
            origin: None,
        }
    }

    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// When the tick at `ts` is due; the first call fixes the origin (due now).
    /// `None` at `Speed::Max`.
    pub fn due(&mut self, ts: i64) -> Option<Instant> {
        let Speed::Factor(factor) = self.speed else {
            return None;
        };
        let (ts0, start) = *self.origin.get_or_insert_with(|| (ts, Instant::now()));
        // A tick earlier than the first is due at once.
        let event_ms = (ts - ts0).max(0) as f64;
        Some(start + Duration::from_secs_f64(event_ms / 1000.0 / factor))
    }

    /// Sleeps until the tick at `ts` is due, and returns how late it is released (zero when
    /// on time): the lag behind the replay clock.
    pub fn wait(&mut self, ts: i64) -> Duration {
        self.wait_unless(ts, &AtomicBool::new(false))
            .expect("never stopped")
    }

    /// Like [`wait`](Self::wait), but returns `None` as soon as `stop` is set.
    pub fn wait_unless(&mut self, ts: i64, stop: &AtomicBool) -> Option<Duration> {
        let Some(due) = self.due(ts) else {
            return Some(Duration::ZERO);
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            if now >= due {
                return Some(now - due);
            }
            std::thread::sleep((due - now).min(SLEEP_SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("100".parse(), Ok(Speed::Factor(100.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }

    #[test]
    fn due_instants_come_from_the_first_tick() {
        let mut pacer = Pacer::new(Speed::Factor(10.0));
        let t0 = pacer.due(1_000).unwrap();
        assert_eq!(pacer.due(2_000).unwrap() - t0, Duration::from_millis(100));
        assert_eq!(pacer.due(11_000).unwrap() - t0, Duration::from_secs(1));
        // Out of order: due at once (at the origin).
        assert_eq!(pacer.due(500).unwrap(), t0);
        assert!(Pacer::new(Speed::Max).due(1).is_none());
    }

    #[test]
    fn waits_keep_to_the_clock() {
        let mut pacer = Pacer::new(Speed::Factor(100.0));
        let start = Instant::now();
        // 20 ticks 500 ms apart in event time: 5 ms apart at 100x, 95 ms in all.
        for i in 0..20 {
            pacer.wait(i * 500);
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(95), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    }

    #[test]
    fn a_stop_request_ends_the_wait() {
        let mut pacer = Pacer::new(Speed::Factor(1.0));
        pacer.wait(0);
        let stop = AtomicBool::new(true);
        let start = Instant::now();
        assert_eq!(pacer.wait_unless(3_600_000, &stop), None);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
