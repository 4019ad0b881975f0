//! AWS Signature Version 4, the pieces a presigned-URL verifier needs,
//! written by hand from AWS's published algorithm with ring's HMAC-SHA256
//! and SHA-256 — deliberately independent of the `aws-sigv4` crate the
//! product signs with, so the two can catch each other's mistakes.
//!
//! Owns: SigV4's URI encoding and decoding, the canonical query string, the
//! canonical request, the string to sign, the signing key chain
//! (`kDate`/`kRegion`/`kService`/`kSigning`) and the `X-Amz-Date` format.
//! Deciding whether a token is acceptable is [`super::verifier`]'s job.

use ring::{digest, hmac};
use std::fmt::Write;
use std::time::SystemTime;

/// The only algorithm SigV4 query signing uses.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Hex SHA-256 of the empty payload: the payload hash of a presigned GET.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The last element of every credential scope.
pub const TERMINATOR: &str = "aws4_request";

/// Percent-encodes `text` as SigV4 wants: RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) as they are, every other byte as `%XX` in upper
/// case hex (so `/`, `+` and `=` are encoded too).
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes (any case); `+` stays `+`. `None` when an escape
/// is cut short or not hex, or the result is not UTF-8.
pub fn uri_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The canonical query string of decoded `(name, value)` pairs: each name
/// and value [`uri_encode`]d, sorted by encoded name (then value), joined
/// as `name=value` with `&`.
pub fn canonical_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(name, value)| (uri_encode(name), uri_encode(value)))
        .collect();
    encoded.sort();
    let parts: Vec<String> = encoded
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    parts.join("&")
}

/// The canonical request of a GET whose only signed header is `host`.
pub fn canonical_request(path: &str, query: &str, host: &str, payload_sha256: &str) -> String {
    format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\n{payload_sha256}")
}

/// The credential scope: `<yyyymmdd>/<region>/<service>/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// The string to sign for `canonical_request`, signed at `amz_date`
/// (`yyyymmddThhmmssZ`) within `scope`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = digest::digest(&digest::SHA256, canonical_request.as_bytes());
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(hash.as_ref()))
}

/// The signing key: HMAC chain from `"AWS4" + secret` over the date,
/// region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        hmac::sign(&key, data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), TERMINATOR);
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// The signature of `string_to_sign` under `key`, in lower-case hex.
pub fn sign(key: &hmac::Key, string_to_sign: &str) -> String {
    hex(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

/// Whether `signature` (raw bytes) signs `string_to_sign` under `key`,
/// compared in constant time.
pub fn signature_matches(key: &hmac::Key, string_to_sign: &str, signature: &[u8]) -> bool {
    hmac::verify(key, string_to_sign.as_bytes(), signature).is_ok()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Decodes hex of either case; `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// `t` as `X-Amz-Date` writes it: `yyyymmddThhmmssZ` (UTC).
pub fn amz_date(t: SystemTime) -> String {
    // "2026-03-01T12:00:00Z" → "20260301T120000Z"
    crate::issuer::rfc3339(t)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// Parses an `X-Amz-Date` (`yyyymmddThhmmssZ`); `None` if it is not one.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let shaped = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shaped {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// AWS's documented example of a signing key ("Derive a signing key",
    /// SigV4 documentation).
    #[test]
    fn the_documented_signing_key() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        // The key itself is not readable from ring; its HMAC of "" is
        // compared with the one the documented key gives.
        let documented =
            unhex("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d").unwrap();
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &documented), b"");
        assert_eq!(hmac::sign(&key, b"").as_ref(), expected.as_ref());
    }

    /// AWS's documented presigned URL example (S3 "Authenticating Requests:
    /// Using Query Parameters", GET /test.txt).
    #[test]
    fn the_documented_presigned_url_example() {
        let query = canonical_query([
            ("X-Amz-Expires", "86400"),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
            ),
            ("X-Amz-Date", "20130524T000000Z"),
            ("X-Amz-SignedHeaders", "host"),
        ]);
        assert_eq!(
            query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        );
        let request = canonical_request(
            "/test.txt",
            &query,
            "examplebucket.s3.amazonaws.com",
            "UNSIGNED-PAYLOAD",
        );
        let scope = scope("20130524", "us-east-1", "s3");
        let to_sign = string_to_sign("20130524T000000Z", &scope, &request);
        assert!(
            to_sign.ends_with("3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        let signature = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        assert_eq!(sign(&key, &to_sign), signature);
        assert!(signature_matches(
            &key,
            &to_sign,
            &unhex(signature).unwrap()
        ));
        let mut altered = unhex(signature).unwrap();
        altered[0] ^= 1;
        assert!(!signature_matches(&key, &to_sign, &altered));
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(uri_encode("a/b+c=d e%"), "a%2Fb%2Bc%3Dd%20e%25");
        assert_eq!(uri_encode("é"), "%C3%A9");
        assert_eq!(uri_decode("a%2fb%2Bc+d").as_deref(), Some("a/b+c+d"));
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(uri_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn amz_dates_round_trip_and_odd_ones_are_refused() {
        let t = UNIX_EPOCH + Duration::from_secs(1_772_366_400); // 2026-03-01T12:00:00Z
        assert_eq!(amz_date(t), "20260301T120000Z");
        assert_eq!(parse_amz_date("20260301T120000Z"), Some(t));
        for bad in [
            "",
            "20260301T120000",
            "2026-03-01T12:00:00Z",
            "20261301T120000Z",
            "2026030xT120000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }
}
