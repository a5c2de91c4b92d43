//! Replay paced by event time.
//!
//! The gap between two ticks is the gap between their timestamps divided by the speed. Every
//! tick's due instant is computed from the first tick (`start + (ts - ts0) / speed`), never
//! from the previous one, so sleeping late once does not delay everything after it: the
//! replay keeps to its clock over any length of run.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

/// Longest single sleep, so that a stop request, a pause or a new speed is seen promptly even
/// during long gaps.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// The replay's speed and pause, changed while it runs (the dashboard's replay buttons) and
/// read by its [`Pacer`]. Shared as an `Arc`; every change bumps a version the pacer watches.
#[derive(Debug)]
pub struct ReplayControl {
    /// `f64` bits of the factor; `+inf` is [`Speed::Max`].
    speed_bits: AtomicU64,
    paused: AtomicBool,
    version: AtomicU64,
}

impl ReplayControl {
    pub fn new(speed: Speed) -> Self {
        Self {
            speed_bits: AtomicU64::new(Self::bits(speed)),
            paused: AtomicBool::new(false),
            version: AtomicU64::new(0),
        }
    }

    fn bits(speed: Speed) -> u64 {
        match speed {
            Speed::Max => f64::INFINITY.to_bits(),
            Speed::Factor(factor) => factor.to_bits(),
        }
    }

    pub fn speed(&self) -> Speed {
        let factor = f64::from_bits(self.speed_bits.load(Ordering::Acquire));
        if factor.is_finite() {
            Speed::Factor(factor)
        } else {
            Speed::Max
        }
    }

    pub fn set_speed(&self, speed: Speed) {
        self.speed_bits.store(Self::bits(speed), Ordering::Release);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// Waits until each tick is due.
#[derive(Debug, Clone)]
pub struct Pacer {
    control: Arc<ReplayControl>,
    /// The control's version the origin was fixed under.
    seen: u64,
    /// The event time and instant the clock counts from: the first tick's, or the last
    /// released tick's when the speed changed or a pause ended.
    origin: Option<(i64, Instant)>,
    /// Event time of the newest tick released.
    released: Option<i64>,
}

impl Pacer {
    pub fn new(speed: Speed) -> Self {
        Self::controlled(Arc::new(ReplayControl::new(speed)))
    }

    /// A pacer whose speed and pause follow `control`.
    pub fn controlled(control: Arc<ReplayControl>) -> Self {
        Self {
            seen: control.version(),
            control,
            origin: None,
            released: None,
        }
    }

    pub fn speed(&self) -> Speed {
        self.control.speed()
    }

    /// Neither paused nor paced: ticks go as fast as they are read.
    pub fn unpaced(&self) -> bool {
        self.control.speed() == Speed::Max && !self.control.paused()
    }

    /// Re-anchors the clock at the newest released tick, now, after a change of speed or a
    /// pause, so the replay goes on from where it stands instead of jumping or catching up.
    fn follow_control(&mut self) {
        let version = self.control.version();
        if version != self.seen {
            self.seen = version;
            self.origin = self.released.map(|ts| (ts, Instant::now()));
        }
    }

    /// When the tick at `ts` is due; the first call fixes the origin (due now). `None` when
    /// unpaced; while paused, never (a far instant).
    pub fn due(&mut self, ts: i64) -> Option<Instant> {
        self.follow_control();
        let now = Instant::now();
        if self.control.paused() {
            return Some(now + Duration::from_secs(86_400 * 365));
        }
        let Speed::Factor(factor) = self.control.speed() else {
            return None;
        };
        let (ts0, start) = *self.origin.get_or_insert((ts, now));
        // A tick earlier than the origin is due at once.
        let event_ms = (ts.saturating_sub(ts0)).max(0) as f64;
        Some(start + Duration::from_secs_f64((event_ms / 1000.0 / factor).min(1e12)))
    }

    /// Notes that the tick at `ts` was released (the clock resumes from it after a change).
    pub fn release(&mut self, ts: i64) {
        self.released = Some(self.released.map_or(ts, |r| r.max(ts)));
    }

    /// Sleeps until the tick at `ts` is due, releases it, and returns how late it is (zero
    /// when on time): the lag behind the replay clock.
    pub fn wait(&mut self, ts: i64) -> Duration {
        self.wait_unless(ts, &AtomicBool::new(false))
            .expect("never stopped")
    }

    /// Like [`wait`](Self::wait), but returns `None` as soon as `stop` is set.
    pub fn wait_unless(&mut self, ts: i64, stop: &AtomicBool) -> Option<Duration> {
        loop {
            match self.wait_at_most(ts, stop, Duration::MAX) {
                Waited::Released(lag) => return Some(lag),
                Waited::Stopped => return None,
                Waited::NotYet => {}
            }
        }
    }

    /// Waits for the tick at `ts` at most `limit`, releasing it if it came due.
    pub fn wait_at_most(&mut self, ts: i64, stop: &AtomicBool, limit: Duration) -> Waited {
        let start = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Waited::Stopped;
            }
            let Some(due) = self.due(ts) else {
                self.release(ts);
                return Waited::Released(Duration::ZERO);
            };
            let now = Instant::now();
            if now >= due {
                self.release(ts);
                return Waited::Released(now - due);
            }
            let waited = now - start;
            if waited >= limit {
                return Waited::NotYet;
            }
            std::thread::sleep((due - now).min(SLEEP_SLICE).min(limit - waited));
        }
    }
}

/// How a bounded wait for a tick ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Waited {
    /// Due and released, this late.
    Released(Duration),
    /// Not due yet (or paused) when the time allowed ran out.
    NotYet,
    /// A stop was requested.
    Stopped,
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

    #[test]
    fn a_new_speed_goes_on_from_the_last_released_tick() {
        let control = Arc::new(ReplayControl::new(Speed::Factor(1.0)));
        let mut pacer = Pacer::controlled(control.clone());
        pacer.wait(0);
        // At 1x the tick 60 s later is a minute away; at 1000x from now, 60 ms.
        control.set_speed(Speed::Factor(1000.0));
        let start = Instant::now();
        pacer.wait(60_000);
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(55), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        control.set_speed(Speed::Max);
        assert!(pacer.unpaced());
        assert_eq!(pacer.due(10_000_000), None);
    }

    #[test]
    fn a_pause_holds_ticks_until_resumed_without_catching_up() {
        let control = Arc::new(ReplayControl::new(Speed::Factor(100.0)));
        let mut pacer = Pacer::controlled(control.clone());
        pacer.wait(0);
        control.set_paused(true);
        assert!(!pacer.unpaced());
        let resumer = {
            let control = control.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                control.set_paused(false);
            })
        };
        let start = Instant::now();
        // Due 10 ms after the origin at 100x, but held for the 300 ms pause...
        pacer.wait(1_000);
        assert!(
            start.elapsed() >= Duration::from_millis(290),
            "{:?}",
            start.elapsed()
        );
        resumer.join().unwrap();
        // ...and after it the clock runs from the tick released, not from the first tick:
        // the next second of event time takes its 10 ms again, not zero.
        let start = Instant::now();
        pacer.wait(2_000);
        assert!(
            start.elapsed() >= Duration::from_millis(8),
            "{:?}",
            start.elapsed()
        );
        // Stopping ends a paused wait too.
        control.set_paused(true);
        assert_eq!(pacer.wait_unless(3_000, &AtomicBool::new(true)), None);
    }

    #[test]
    fn a_control_reports_what_it_was_set_to() {
        let control = ReplayControl::new(Speed::Max);
        assert_eq!(control.speed(), Speed::Max);
        control.set_speed(Speed::Factor(10.0));
        assert_eq!(control.speed(), Speed::Factor(10.0));
        assert!(!control.paused());
        control.set_paused(true);
        assert!(control.paused());
    }
}
