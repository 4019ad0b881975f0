//! How many connections a relay thread's pool keeps: the schedule the refill
//! loop follows, free of I/O so it is tested on its own.
//!
//! The refill dials up to [`target`]: the takes expected while one replacement
//! is on its way (the recent rate of takes, [`TakeRate`], times the refill
//! latency, the settle delay plus the recent dial time), times [`HEADROOM`],
//! kept within the thread's [`Limits`]. The rate is a count of takes that
//! decays e-fold every [`DECAY`], so a burst raises the target at once and a
//! quiet spell lowers it within seconds. Connections returned by clients are
//! kept up to the cap whatever the target (keeping one costs no dial); those
//! beyond the target are closed once they have waited [`LINGER`] unused.

use std::time::{Duration, Instant};

/// The rate of takes forgets the past e-fold this often.
pub const DECAY: Duration = Duration::from_secs(2);

/// Connections dialed ahead per take expected during one refill.
pub const HEADROOM: f64 = 2.0;

/// How long a connection beyond the target may wait unused before it is closed.
pub const LINGER: Duration = Duration::from_secs(10);

/// The dial time assumed before the first dial is measured.
pub const FIRST_DIAL: Duration = Duration::from_millis(10);

/// Bounds on one thread's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Kept even when no client comes.
    pub floor: usize,
    /// Never more waiting than this.
    pub cap: usize,
}

impl Limits {
    /// Up to `cap` connections, one of them kept when quiet (none for cap 0).
    pub fn up_to(cap: usize) -> Limits {
        Limits {
            floor: cap.min(1),
            cap,
        }
    }
}

/// A count of takes that decays e-fold every [`DECAY`]; divided by `DECAY`,
/// it is a rate that follows a steady load and fades when clients stop.
#[derive(Debug, Clone, Copy, Default)]
pub struct TakeRate {
    level: f64,
    at: Option<Instant>,
}

impl TakeRate {
    /// Counts one take at `now`.
    pub fn record(&mut self, now: Instant) {
        self.level = self.level_at(now) + 1.0;
        self.at = Some(now);
    }

    /// Recent takes per second, as of `now`.
    pub fn per_second(&self, now: Instant) -> f64 {
        self.level_at(now) / DECAY.as_secs_f64()
    }

    fn level_at(&self, now: Instant) -> f64 {
        let Some(at) = self.at else { return 0.0 };
        let age = now.saturating_duration_since(at).as_secs_f64();
        self.level * (-age / DECAY.as_secs_f64()).exp()
    }
}

/// How many connections the refill keeps waiting: enough for the takes
/// expected while a replacement is on its way (`refill`), with headroom,
/// within `limits`.
pub fn target(takes_per_second: f64, refill: Duration, limits: Limits) -> usize {
    // In microseconds, so round figures multiply out exactly.
    let micros = refill.as_micros() as f64;
    let wanted = (takes_per_second * micros * HEADROOM / 1e6).ceil();
    // `as` saturates (and NaN becomes 0); clamp then bounds it both ways.
    (wanted as usize).clamp(limits.floor, limits.cap.max(limits.floor))
}

/// The dial time to plan with after a dial took `sample`: a moving average
/// that weighs the newest a quarter.
pub fn smoothed(previous: Duration, sample: Duration) -> Duration {
    (previous * 3 + sample) / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_quiet_pool_keeps_its_floor() {
        let limits = Limits::up_to(32);
        assert_eq!(limits.floor, 1);
        assert_eq!(target(0.0, 35 * MS, limits), 1);
        // A client a second: one connection covers it.
        assert_eq!(target(1.0, 35 * MS, limits), 1);
    }

    #[test]
    fn the_target_covers_the_takes_during_a_refill_within_the_cap() {
        let limits = Limits::up_to(32);
        // 100 takes/s, 35 ms to refill: 3.5 takes meanwhile, twice that kept.
        assert_eq!(target(100.0, 35 * MS, limits), 7);
        // A slower dial asks for more.
        assert_eq!(target(100.0, 75 * MS, limits), 15);
        assert_eq!(target(5_000.0, 35 * MS, limits), 32);
        assert_eq!(target(f64::INFINITY, 35 * MS, limits), 32);
        assert_eq!(target(f64::NAN, 35 * MS, limits), 1);
    }

    #[test]
    fn no_pool_stays_no_pool() {
        let none = Limits::up_to(0);
        assert_eq!(none, Limits { floor: 0, cap: 0 });
        assert_eq!(target(10_000.0, 35 * MS, none), 0);
    }

    #[test]
    fn the_rate_follows_a_steady_load_and_fades_when_it_stops() {
        let start = Instant::now();
        let mut rate = TakeRate::default();
        assert_eq!(rate.per_second(start), 0.0);
        // 1,000 takes a second for 10 s (five decay times): close to 1,000/s.
        let mut now = start;
        for _ in 0..10_000 {
            now += MS;
            rate.record(now);
        }
        let steady = rate.per_second(now);
        assert!((980.0..=1_010.0).contains(&steady), "{steady}");
        assert_eq!(target(steady, 35 * MS, Limits::up_to(32)), 32);
        // One decay time later, e-fold less; after ten, the floor again.
        let later = rate.per_second(now + DECAY);
        assert!((steady / later - std::f64::consts::E).abs() < 0.01);
        assert_eq!(
            target(
                rate.per_second(now + DECAY * 10),
                35 * MS,
                Limits::up_to(32)
            ),
            1
        );
    }

    #[test]
    fn a_burst_raises_the_rate_at_once() {
        let now = Instant::now();
        let mut rate = TakeRate::default();
        for _ in 0..50 {
            rate.record(now);
        }
        // 50 takes at once count as 25/s over the decay time.
        assert_eq!(rate.per_second(now), 25.0);
        assert_eq!(target(rate.per_second(now), 100 * MS, Limits::up_to(32)), 5);
    }

    #[test]
    fn the_dial_time_moves_a_quarter_of_the_way_to_each_sample() {
        assert_eq!(smoothed(10 * MS, 30 * MS), 15 * MS);
        assert_eq!(smoothed(10 * MS, 10 * MS), 10 * MS);
    }
}
