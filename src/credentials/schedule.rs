//! When to fetch the next token: a pure function of the current token's issue
//! and expiry times, so it can be tested without clocks or clouds.
//!
//! The next refresh is due at a fraction of the token's lifetime (70 % by
//! default) minus a random jitter of up to 10 % of the lifetime, so a fleet of
//! sidecars does not refresh in step. It is never later than `margin` before
//! expiry (3 minutes by default, Microsoft's guidance for re-authentication),
//! shrunk to a quarter of the lifetime for very short tokens, and never in
//! the past. This holds for 5-second test tokens and 24-hour managed-identity
//! tokens alike.

use std::time::{Duration, SystemTime};

/// Tuning for [`refresh_at`].
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Fraction of the lifetime after which to refresh, before jitter.
    pub at_fraction: f64,
    /// Largest jitter, as a fraction of the lifetime, taken off the above.
    pub jitter_fraction: f64,
    /// Refresh no later than this before expiry (shrunk for short tokens).
    pub margin: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            at_fraction: 0.7,
            jitter_fraction: 0.1,
            margin: Duration::from_secs(180),
        }
    }
}

/// When to refresh a token issued at `issued` that expires at `expires`.
/// `jitter` is a random number in `[0, 1)`.
pub fn refresh_at(
    issued: SystemTime,
    expires: SystemTime,
    now: SystemTime,
    policy: &RefreshPolicy,
    jitter: f64,
) -> SystemTime {
    let lifetime = expires.duration_since(issued).unwrap_or_default();
    let fraction = (policy.at_fraction - policy.jitter_fraction * jitter.clamp(0.0, 1.0)).max(0.0);
    let planned = issued + lifetime.mul_f64(fraction);
    let margin = policy.margin.min(lifetime / 4);
    let latest = expires.checked_sub(margin).unwrap_or(expires);
    planned.min(latest).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(issued_ago: Duration, lifetime: Duration, jitter: f64) -> (Duration, Duration) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let issued = now - issued_ago;
        let expires = issued + lifetime;
        let when = refresh_at(issued, expires, now, &RefreshPolicy::default(), jitter);
        (
            when.duration_since(issued).unwrap(),
            expires.duration_since(when).unwrap(),
        )
    }

    #[test]
    fn a_75_minute_token_refreshes_long_before_its_last_5_minutes() {
        for jitter in [0.0, 0.5, 0.999] {
            let (after, before_expiry) = at(Duration::ZERO, 75 * MIN, jitter);
            assert!(before_expiry >= 20 * MIN, "{before_expiry:?}");
            assert!(after >= 45 * MIN, "{after:?}");
        }
    }

    #[test]
    fn jitter_spreads_refreshes() {
        let (early, _) = at(Duration::ZERO, 60 * MIN, 0.999);
        let (late, _) = at(Duration::ZERO, 60 * MIN, 0.0);
        assert!(late - early > 5 * MIN);
    }

    #[test]
    fn a_24_hour_token_refreshes_within_its_first_17_hours() {
        let (after, before_expiry) = at(Duration::ZERO, 24 * 60 * MIN, 0.0);
        assert!(after <= 17 * 60 * MIN && before_expiry >= 7 * 60 * MIN);
    }

    #[test]
    fn never_later_than_three_minutes_before_expiry() {
        let policy = RefreshPolicy {
            at_fraction: 0.99,
            ..RefreshPolicy::default()
        };
        let issued = SystemTime::UNIX_EPOCH;
        let expires = issued + 60 * MIN;
        let when = refresh_at(issued, expires, issued, &policy, 0.0);
        assert_eq!(expires.duration_since(when).unwrap(), 3 * MIN);
    }

    #[test]
    fn five_second_tokens_refresh_with_time_to_spare() {
        let (after, before_expiry) = at(Duration::ZERO, Duration::from_secs(5), 0.0);
        assert_eq!(after, Duration::from_millis(3500));
        assert!(before_expiry >= Duration::from_millis(1250));
    }

    #[test]
    fn never_in_the_past() {
        // A token fetched late (issued long ago) is refreshed right away.
        let (after, _) = at(50 * MIN, 60 * MIN, 0.0);
        assert_eq!(after, 50 * MIN);
    }
}
