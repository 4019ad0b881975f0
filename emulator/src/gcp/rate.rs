//! The limit on IAM authentications per second: a token bucket, I/O-free.
//!
//! Memorystore limits how many new connections per second IAM
//! authentication admits (each AUTH is checked with Google's IAM backend);
//! the number is not published. Here each front holds one bucket of
//! `per_second` permits, refilled continuously at `per_second` a second, so
//! a burst of up to one second's worth passes at once.

use std::time::Instant;

/// A token bucket; the caller passes the time, so it is tested without
/// sleeping.
#[derive(Debug, Clone)]
pub struct AuthRateLimit {
    per_second: u32,
    available: f64,
    refilled_at: Instant,
}

impl AuthRateLimit {
    /// A full bucket admitting `per_second` AUTHs a second (at least 1).
    pub fn new(per_second: u32, now: Instant) -> AuthRateLimit {
        let per_second = per_second.max(1);
        AuthRateLimit {
            per_second,
            available: f64::from(per_second),
            refilled_at: now,
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one permit if there is one at `now`; says whether it did.
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let rate = f64::from(self.per_second);
        self.available = (self.available + elapsed.as_secs_f64() * rate).min(rate);
        self.refilled_at = now.max(self.refilled_at);
        if self.available >= 1.0 {
            self.available -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let start = Instant::now();
        let mut limit = AuthRateLimit::new(4, start);
        assert!((0..4).all(|_| limit.admit(start)));
        assert!(!limit.admit(start));
        // A quarter second later, one more.
        let later = start + Duration::from_millis(250);
        assert!(limit.admit(later));
        assert!(!limit.admit(later));
        // Idle for long: full again, never more than the rate.
        let idle = later + Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| limit.admit(idle)).count(), 4);
    }

    #[test]
    fn time_going_backwards_takes_nothing_back() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut limit = AuthRateLimit::new(1, start);
        assert!(limit.admit(start));
        assert!(!limit.admit(start - Duration::from_millis(500)));
        assert!(limit.admit(start + Duration::from_secs(1)));
    }

    #[test]
    fn zero_means_one() {
        let now = Instant::now();
        assert_eq!(AuthRateLimit::new(0, now).per_second(), 1);
    }
}
