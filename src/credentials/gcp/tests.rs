use super::*;
use std::collections::HashMap;

const MIN: Duration = Duration::from_secs(60);

#[test]
fn a_token_from_a_file_is_leased_for_minutes_and_never_past_an_hour() {
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    assert_eq!(lease_end(first, first), first + LEASE);
    assert_eq!(lease_end(first, first + 30 * MIN), first + 30 * MIN + LEASE);
    assert_eq!(lease_end(first, first + 59 * MIN), first + LONGEST_LIFE);
    assert!(LEASE < 4 * MIN, "inside the library's refresh slack");
}

#[test]
fn reauth_is_always_or_never() {
    assert_eq!("always".parse(), Ok(Reauth::Always));
    assert_eq!("never".parse(), Ok(Reauth::Never));
    assert!("sometimes".parse::<Reauth>().is_err());
}

#[test]
fn the_credentials_file_is_named_by_its_type_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let key = write(
        "sa.json",
        r#"{"type": "service_account", "private_key": "SECRET-KEY"}"#,
    );
    assert_eq!(file_kind(&key).unwrap(), "service-account-key");
    let user = write("user.json", r#"{"type": "authorized_user"}"#);
    assert_eq!(file_kind(&user).unwrap(), "authorized-user");
    let federated = write("wif.json", r#"{"type": "external_account"}"#);
    assert_eq!(file_kind(&federated).unwrap(), "external-account");
    let junk = write("junk.json", "SECRET-KEY not json");
    let e = file_kind(&junk).unwrap_err();
    assert!(!e.contains("SECRET-KEY"), "{e}");
    let untyped = write("untyped.json", "{}");
    assert!(file_kind(&untyped).unwrap_err().contains("no \"type\""));
}

#[test]
fn adc_order_is_the_variable_then_gclouds_file_then_the_metadata_server() {
    let dir = tempfile::tempdir().unwrap();
    let gcloud = dir.path().join("gcloud");
    std::fs::create_dir(&gcloud).unwrap();
    // (`HashMap<String, String>` is an `Environment` of its own.)
    let vars = |pairs: &[(&str, String)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let config = vars(&[("CLOUDSDK_CONFIG", gcloud.display().to_string())]);
    assert_eq!(credentials_file(&config).unwrap(), None, "metadata server");
    let adc = gcloud.join("application_default_credentials.json");
    std::fs::write(&adc, "{}").unwrap();
    assert_eq!(credentials_file(&config).unwrap(), Some(adc.clone()));
    let named = dir.path().join("key.json");
    std::fs::write(&named, "{}").unwrap();
    let both = vars(&[
        ("CLOUDSDK_CONFIG", gcloud.display().to_string()),
        (CREDENTIALS_VAR, named.display().to_string()),
    ]);
    assert_eq!(credentials_file(&both).unwrap(), Some(named));
    let missing = vars(&[(CREDENTIALS_VAR, "/nonexistent/key.json".into())]);
    assert!(credentials_file(&missing)
        .unwrap_err()
        .contains("not a readable file"));
    let home = vars(&[("HOME", dir.path().display().to_string())]);
    assert_eq!(credentials_file(&home).unwrap(), None);
}
