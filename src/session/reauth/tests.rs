//! Tests of [`super`]: when a live connection re-authenticates, and what an answer changes.
use super::*;
use crate::credentials::Secret;

#[test]
fn the_spread_is_half_the_time_left_at_most_a_minute() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let in_secs = |s| Some(now + Duration::from_secs(s));
    assert_eq!(delay(now, in_secs(2), 0.999_999).as_millis(), 999);
    assert_eq!(delay(now, in_secs(2), 0.0), Duration::ZERO);
    assert_eq!(delay(now, in_secs(1200), 0.5), Duration::from_secs(30));
    assert_eq!(delay(now, None, 0.5), Duration::ZERO);
    assert_eq!(
        delay(now, Some(now - Duration::from_secs(1)), 0.5),
        Duration::ZERO
    );
}

#[test]
fn near_an_age_limit_only_the_last_stretch_is_spread_over() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let in_secs = |s| Some(now + Duration::from_secs(s));
    let twelve_hours = 12 * 3600;
    let latest = Duration::from_secs(twelve_hours - 600);
    assert_eq!(delay_to_limit(now, in_secs(twelve_hours), 0.0), latest);
    assert_eq!(
        delay_to_limit(now, in_secs(twelve_hours), 0.999_999).as_secs(),
        latest.as_secs() - 60
    );
    // Shortened for a test: half the time left, then a quarter of it spread.
    assert_eq!(
        delay_to_limit(now, in_secs(20), 0.0),
        Duration::from_secs(10)
    );
    assert_eq!(delay_to_limit(now, in_secs(20), 0.5).as_millis(), 7_500);
    assert_eq!(delay_to_limit(now, None, 0.5), Duration::ZERO);
    assert_eq!(
        delay_to_limit(now, Some(now - Duration::from_secs(1)), 0.5),
        Duration::ZERO
    );
}

#[test]
fn under_an_age_limit_a_connection_renews_near_its_own_deadline() {
    let now = Instant::now();
    let hour = Duration::from_secs(3600);
    let aged = |secret: &str| {
        let mut c = Credential::password(None, Secret::new(secret.into()));
        c.expires_at = Some(SystemTime::now() + Duration::from_secs(900));
        c.limit = ConnectionLimit::AfterAuth {
            max_age: hour,
            until: None,
        };
        Arc::new(c)
    };
    let authed = SystemTime::now() - Duration::from_secs(1800);
    let mut r = Reauth::new(aged("old"), authed);
    assert_eq!(r.deadline(), Some(authed + hour));
    r.published(aged("new"), now, 0.0);
    let due = r.wake_at(now).expect("well ahead");
    let ahead = due - now;
    // 30 minutes left: the latest point is 10 minutes before the limit, spread over a minute.
    assert!(
        ahead > Duration::from_secs(1135) && ahead <= Duration::from_secs(1200),
        "{ahead:?}"
    );
    r.published(aged("newer"), now, 0.0);
    let taken = r.take_if_safe(None, When::Due(due)).expect("due");
    assert_eq!(taken.secret.as_ref().unwrap().expose(), "newer");
    let renewed = r.deadline().unwrap();
    assert!(
        renewed > SystemTime::now() + hour - Duration::from_secs(5),
        "counted from the new AUTH"
    );
}

fn credential(secret: &str) -> Arc<Credential> {
    Arc::new(Credential::password(None, Secret::new(secret.into())))
}

#[test]
fn a_due_credential_waits_for_a_safe_point_and_is_deferred_once() {
    let now = Instant::now();
    let mut r = Reauth::new(credential("old"), SystemTime::now());
    assert!(
        r.take_if_safe(None, When::Due(now)).is_none(),
        "nothing pending"
    );
    r.published(credential("new"), now, 0.0);
    assert_eq!(r.wake_at(now), None, "due at once: no wake-up ahead");
    assert!(r
        .take_if_safe(Some(Blocker::Multi), When::Due(now))
        .is_none());
    assert!(r
        .take_if_safe(Some(Blocker::Multi), When::Due(now))
        .is_none());
    assert!(r.pending.as_ref().unwrap().deferred);
    let taken = r.take_if_safe(None, When::Due(now)).expect("safe now");
    assert_eq!(taken.secret.as_ref().unwrap().expose(), "new");
    assert!(Arc::ptr_eq(&r.current, &taken));
    assert!(r.take_if_safe(None, When::Due(now)).is_none(), "taken once");
}

#[test]
fn an_early_take_ignores_the_due_time_but_not_the_blocker() {
    let now = Instant::now();
    let mut expiring = Credential::password(None, Secret::new("old".into()));
    expiring.expires_at = Some(SystemTime::now() + Duration::from_secs(600));
    let mut r = Reauth::new(Arc::new(expiring), SystemTime::now());
    r.published(credential("new"), now, 0.5);
    let due = r.wake_at(now).expect("spread into the future");
    assert!(
        r.take_if_safe(None, When::Due(now)).is_none(),
        "not due yet"
    );
    assert!(r.take_if_safe(Some(Blocker::Raw), When::Early).is_none());
    assert!(
        !r.pending.as_ref().unwrap().deferred,
        "early takes are not deferrals"
    );
    // A newer publication keeps the time already drawn.
    r.published(credential("newer"), now, 0.0);
    assert_eq!(r.wake_at(now), Some(due));
    let taken = r.take_if_safe(None, When::Early).expect("taken early");
    assert_eq!(taken.secret.as_ref().unwrap().expose(), "newer");
}

#[test]
fn reset_settles_on_the_newest_credential() {
    let mut r = Reauth::new(credential("old"), SystemTime::now());
    assert_eq!(r.settle().secret.as_ref().unwrap().expose(), "old");
    r.published(credential("new"), Instant::now(), 0.9);
    assert_eq!(r.settle().secret.as_ref().unwrap().expose(), "new");
    assert!(r.pending.is_none());
}

fn aged(secret: &str, max_age: Duration) -> Arc<Credential> {
    let mut c = Credential::password(None, Secret::new(secret.into()));
    c.expires_at = Some(SystemTime::now() + Duration::from_secs(900));
    c.limit = ConnectionLimit::AfterAuth {
        max_age,
        until: None,
    };
    Arc::new(c)
}

#[test]
fn a_busy_refusal_keeps_the_old_deadline_and_tries_again_before_it() {
    let hour = Duration::from_secs(3600);
    let authed = SystemTime::now() - Duration::from_secs(3000);
    let mut r = Reauth::new(aged("old", hour), authed);
    let old_deadline = r.deadline().unwrap();
    let now = Instant::now();
    r.published(aged("new", hour), now, 0.0);
    let due = r.wake_at(now).unwrap();
    let sent = r.take_if_safe(None, When::Due(due)).expect("due");
    assert!(r.awaiting());
    assert!(r.deadline().unwrap() > old_deadline, "assumed accepted");

    r.answer(Verdict::Busy, due, 0.0);
    assert!(!r.awaiting());
    assert_eq!(
        r.deadline(),
        Some(old_deadline),
        "the server still counts from the old AUTH"
    );
    assert_eq!(r.current.secret, aged("old", hour).secret);
    let retry = r.wake_at(due).expect("a retry is scheduled");
    let wait = retry - due;
    assert!(
        wait >= Duration::from_secs(15) && wait <= Duration::from_secs(300),
        "{wait:?}"
    );
    let again = r.take_if_safe(None, When::Due(retry)).expect("tried again");
    assert!(Arc::ptr_eq(&again, &sent));
    r.answer(Verdict::Accepted, retry, 0.0);
    assert!(r.deadline().unwrap() > old_deadline, "accepted this time");
    assert!(r.pending.is_none(), "nothing more to do");
    let renewal = r
        .wake_at(retry)
        .expect("the next renewal, near the new deadline");
    assert!(
        renewal > retry + Duration::from_secs(40 * 60),
        "{:?}",
        renewal - retry
    );
}

#[test]
fn a_wrong_credential_reverts_without_a_retry_and_answers_after_reset_are_ignored() {
    let hour = Duration::from_secs(3600);
    let authed = SystemTime::now() - Duration::from_secs(600);
    let mut r = Reauth::new(aged("old", hour), authed);
    let now = Instant::now();
    r.published(aged("new", hour), now, 0.0);
    r.take_if_safe(None, When::Early).expect("taken early");
    r.answer(Verdict::Refused, now, 0.0);
    assert_eq!(r.deadline(), Some(authed + hour));
    assert!(r.pending.is_none(), "no retry of a refused credential");
    let renewal = r
        .wake_at(now)
        .expect("renewed with the old one near its deadline");
    assert!(
        renewal > now + Duration::from_secs(30 * 60),
        "{:?}",
        renewal - now
    );

    r.published(aged("newer", hour), now, 0.0);
    r.take_if_safe(None, When::Early).expect("taken early");
    assert_eq!(r.settle().secret, aged("newer", hour).secret);
    r.answer(Verdict::Busy, now, 0.0);
    assert!(
        r.pending.is_none(),
        "settled by RESET: the late answer changes nothing"
    );
    assert!(r.deadline().unwrap() > SystemTime::now() + hour - Duration::from_secs(5));
}

#[test]
fn busy_retries_come_within_half_the_time_left() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let in_secs = |s| Some(now + Duration::from_secs(s));
    assert_eq!(
        retry_after_busy(now, in_secs(43_200), 0.0),
        Duration::from_secs(15)
    );
    assert_eq!(
        retry_after_busy(now, in_secs(43_200), 0.999_999).as_secs(),
        29
    );
    assert_eq!(
        retry_after_busy(now, in_secs(20), 0.5),
        Duration::from_secs(10)
    );
    assert_eq!(retry_after_busy(now, None, 0.0), Duration::from_secs(15));
}

#[test]
fn under_an_age_limit_the_credential_in_use_renews_if_nothing_newer_came() {
    let now = Instant::now();
    let only = aged("only", Duration::from_secs(20));
    let mut r = Reauth::new(only, SystemTime::now());
    let at = r.wake_at(now).expect("a renewal is planned");
    assert!(at - now <= Duration::from_secs(10) && at - now >= Duration::from_secs(5));
    assert!(r.take_if_safe(None, When::Due(now)).is_none(), "not yet");
    assert!(r
        .take_if_safe(Some(Blocker::Multi), When::Due(at))
        .is_none());
    let again = r.take_if_safe(None, When::Due(at)).expect("renewed");
    assert_eq!(again.secret.as_ref().unwrap().expose(), "only");
    assert!(r.awaiting(), "its answer is awaited");
    assert!(r.wake_at(now).is_some(), "and the next renewal planned");
}

fn kept(secret: &str) -> Arc<Credential> {
    let mut c = Credential::password(None, Secret::new(secret.into()));
    c.expires_at = Some(SystemTime::now() + Duration::from_secs(5));
    c.limit = ConnectionLimit::None;
    Arc::new(c)
}

#[test]
fn a_connection_the_server_keeps_is_never_reauthenticated_but_a_reset_takes_the_newest() {
    let now = Instant::now();
    let mut r = Reauth::new(kept("old"), SystemTime::now());
    assert_eq!(
        r.deadline(),
        None,
        "no deadline: blocking commands are not sliced"
    );
    r.published(kept("new"), now, 0.0);
    assert_eq!(r.wake_at(now), None);
    assert!(r.take_if_safe(None, When::Due(now + MAX_SPREAD)).is_none());
    assert!(
        r.take_if_safe(None, When::Early).is_none(),
        "not before MULTI either"
    );
    r.published(kept("newer"), now, 0.0);
    assert_eq!(r.settle().secret.as_ref().unwrap().expose(), "newer");
    assert!(r.take_if_safe(None, When::Early).is_none());
}
