//! Token errors phrased for an operator: the transport failure at the bottom
//! of an identity SDK's error chain, with the address it concerns
//! ("connection refused to 169.254.169.254:80"), rather than the SDK's
//! outer wording ("failed to execute `reqwest` request").

use std::error::Error;
use std::io;

/// Describes `e` by the deepest I/O error in its chain and the URL's host
/// and port, when the chain has one; `None` when there is no I/O error in
/// it (an HTTP error status, a malformed answer: the SDK's own text says it
/// best).
pub fn transport_failure(e: &(dyn Error + 'static)) -> Option<String> {
    let mut address = None;
    let mut failure = None;
    let mut timed_out = false;
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(request) = err.downcast_ref::<reqwest::Error>() {
            timed_out |= request.is_timeout();
            if let Some(url) = request.url() {
                if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
                    address = Some(format!("{host}:{port}"));
                }
            }
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            failure = Some(describe_io(io));
        }
        current = err.source();
    }
    let failure = match (failure, timed_out) {
        (Some(failure), _) => failure,
        (None, true) => "timed out".to_string(),
        (None, false) => return None,
    };
    Some(match address {
        Some(address) => format!("{failure} to {address}"),
        None => failure,
    })
}

/// `text` followed by each cause in `source`'s chain that it does not
/// already say, joined with ": " (SDK errors often repeat their cause).
pub fn with_causes(mut text: String, mut source: Option<&(dyn Error + 'static)>) -> String {
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::TimedOut => "connection timed out".into(),
        io::ErrorKind::HostUnreachable => "host unreachable, connecting".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable, connecting".into(),
        io::ErrorKind::UnexpectedEof => "connection closed early".into(),
        // The OS's own words, without the "(os error N)" tail.
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SDK-like wrapper: its own words, the real cause as its source.
    #[derive(Debug)]
    struct Wrapped(&'static str, io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn the_io_error_at_the_bottom_is_named() {
        let e = Wrapped(
            "failed to execute `reqwest` request",
            io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(transport_failure(&e).as_deref(), Some("connection refused"));
        let other = Wrapped(
            "x",
            io::Error::other("resolve_deny: denied destination (os error 1)"),
        );
        assert_eq!(
            transport_failure(&other).as_deref(),
            Some("resolve_deny: denied destination")
        );
    }

    #[test]
    fn no_io_error_leaves_the_sdk_words() {
        let e = io::Error::other("x");
        let top: &(dyn Error + 'static) = &Wrapped("HTTP 400", e);
        assert!(transport_failure(top).is_some(), "the io error is found");
        #[derive(Debug)]
        struct Status;
        impl std::fmt::Display for Status {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("400 identity not found")
            }
        }
        impl Error for Status {}
        assert_eq!(transport_failure(&Status), None);
    }

    #[tokio::test]
    async fn a_refused_http_connection_names_its_address() {
        // The reqwest client redauth's identity stack uses, with the provider main installs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .build()
            .expect("a plain HTTP client");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = client
            .get(format!("http://127.0.0.1:{port}/token"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            transport_failure(&e),
            Some(format!("connection refused to 127.0.0.1:{port}"))
        );
    }
}
