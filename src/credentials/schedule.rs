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
//!
//! Two more decisions live here. When a fetch hands back the token already
//! held (identity stacks cache tokens until about 5 minutes before expiry),
//! [`retry_same_at`] halves the time left to the latest refresh point, so the
//! retries land inside the cache's renewal window before that point passes.
//! When a fetch fails, [`backoff`] waits exponentially longer, with jitter,
//! up to a cap — a short one while no valid token is held, since then every
//! new client is refused until a fetch succeeds.

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
    /// First delay after a failed fetch; doubled per further failure.
    pub backoff_base: Duration,
    /// Longest delay between failed fetches while a valid token is held.
    pub backoff_cap: Duration,
    /// Longest delay between failed fetches while none is (redauth cannot
    /// serve new clients: recover as soon as the source does).
    pub urgent_cap: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            at_fraction: 0.7,
            jitter_fraction: 0.1,
            margin: Duration::from_secs(180),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            urgent_cap: Duration::from_secs(2),
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
    planned
        .min(latest_refresh(issued, expires, policy))
        .max(now)
}

/// The last moment a refresh is still on time: `margin` before expiry,
/// the margin shrunk to a quarter of the lifetime for short tokens.
fn latest_refresh(issued: SystemTime, expires: SystemTime, policy: &RefreshPolicy) -> SystemTime {
    let lifetime = expires.duration_since(issued).unwrap_or_default();
    let margin = policy.margin.min(lifetime / 4);
    expires.checked_sub(margin).unwrap_or(expires)
}

/// When to ask again after a fetch returned the token already held (issued at
/// `issued`, expiring at `expires`): halfway to the latest refresh point, but
/// not sooner than a twentieth of the lifetime (between 100 ms and 5 s), and
/// never after expiry.
pub fn retry_same_at(
    issued: SystemTime,
    expires: SystemTime,
    now: SystemTime,
    policy: &RefreshPolicy,
) -> SystemTime {
    let lifetime = expires.duration_since(issued).unwrap_or_default();
    let floor = (lifetime / 20).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let to_latest = latest_refresh(issued, expires, policy)
        .duration_since(now)
        .unwrap_or_default();
    (now + (to_latest / 2).max(floor)).min(expires.max(now))
}

/// How long to wait after the `failures`-th failed fetch in a row (1-based),
/// `holding_valid` saying whether a token still valid is held. `jitter` in
/// `[0, 1)` spreads the delay over its upper half.
pub fn backoff(
    failures: u32,
    holding_valid: bool,
    policy: &RefreshPolicy,
    jitter: f64,
) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let cap = match holding_valid {
        true => policy.backoff_cap,
        false => policy.urgent_cap,
    };
    let full = policy.backoff_base.saturating_mul(1 << doublings).min(cap);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
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
    fn the_same_token_is_asked_for_again_until_the_cache_lets_go() {
        // A 75-minute token; the identity stack caches it until 5 minutes
        // before expiry. The retries must reach that window before the
        // latest refresh point (3 minutes before expiry).
        let policy = RefreshPolicy::default();
        let issued = SystemTime::UNIX_EPOCH;
        let expires = issued + 75 * MIN;
        let cache_lets_go = expires - 5 * MIN;
        let mut now = refresh_at(issued, expires, issued, &policy, 0.0);
        let mut asks = 0;
        while now < cache_lets_go {
            now = retry_same_at(issued, expires, now, &policy);
            asks += 1;
            assert!(asks < 20, "never reached the renewal window");
        }
        assert!(
            now <= expires - 3 * MIN,
            "{:?}",
            expires.duration_since(now)
        );
    }

    #[test]
    fn same_token_retries_have_a_floor_and_stop_at_expiry() {
        let policy = RefreshPolicy::default();
        let issued = SystemTime::UNIX_EPOCH;
        let expires = issued + Duration::from_secs(10);
        // Past the latest refresh point: wait the floor (10 s / 20 = 500 ms).
        let now = issued + Duration::from_secs(9);
        let next = retry_same_at(issued, expires, now, &policy);
        assert_eq!(
            next.duration_since(now).unwrap(),
            Duration::from_millis(500)
        );
        // Almost expired: never later than expiry.
        let now = expires - Duration::from_millis(200);
        assert_eq!(retry_same_at(issued, expires, now, &policy), expires);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let policy = RefreshPolicy::default();
        let secs = |failures, jitter| backoff(failures, true, &policy, jitter).as_secs_f64();
        assert_eq!(secs(1, 0.999_999).round(), 1.0);
        assert_eq!(secs(1, 0.0), 0.5);
        assert_eq!(secs(3, 0.999_999).round(), 4.0);
        assert_eq!(secs(30, 0.999_999).round(), 60.0);
        assert_eq!(secs(u32::MAX, 0.0), 30.0);
    }

    #[test]
    fn without_a_valid_token_retries_come_every_second_or_two() {
        let policy = RefreshPolicy::default();
        for failures in [1, 2, 5, 100, u32::MAX] {
            for jitter in [0.0, 0.5, 0.999_999] {
                let d = backoff(failures, false, &policy, jitter).as_secs_f64();
                assert!((0.5..=2.0).contains(&d), "{failures} {jitter}: {d}");
                if failures > 1 {
                    assert!(d >= 1.0, "{failures} {jitter}: {d}");
                }
            }
        }
    }

    #[test]
    fn never_in_the_past() {
        // A token fetched late (issued long ago) is refreshed right away.
        let (after, _) = at(50 * MIN, 60 * MIN, 0.0);
        assert_eq!(after, 50 * MIN);
    }
}
