//! The upstream URL: `rediss://host:port` (TLS) or `redis://host:port`.
//! A user or password in the URL is refused, and [`redact_url`] hides it in any
//! message that shows the URL as given.

use std::fmt;

/// Where the upstream Redis listens and whether to speak TLS to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("not a URL: {0}")]
    Syntax(String),
    #[error("scheme must be rediss:// (TLS) or redis://, not {0}://")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("a user or password in the URL is not accepted (it would show in `ps` and in logs); use --username, and --password-file or REDAUTH_PASSWORD")]
    Credentials,
    #[error("a path or query in the URL is not supported (select a database with SELECT)")]
    Path,
}

impl Endpoint {
    /// Parses an upstream URL. The port defaults to 6379 as in other Redis tools.
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let url = url::Url::parse(text).map_err(|e| EndpointError::Syntax(e.to_string()))?;
        let tls = match url.scheme() {
            "rediss" => true,
            "redis" => false,
            other => return Err(EndpointError::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointError::Credentials);
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(EndpointError::Path);
        }
        let host = url.host_str().ok_or(EndpointError::NoHost)?;
        // IPv6 literals come back bracketed; connecting wants them bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Endpoint {
            host,
            port: url.port().unwrap_or(6379),
            tls,
        })
    }
}

/// `text` with any password in it replaced by `***`: `rediss://user:***@host`,
/// or `rediss://***@host` when the userinfo has no `:`. Works on text that is
/// not a valid URL too, so an error about a malformed URL cannot leak one.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{}{shown}{}", &text[..scheme_end], &rest[at..])
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tls_and_plain() {
        let e = Endpoint::parse("rediss://cache.redis.azure.net:10000").unwrap();
        assert_eq!(
            e,
            Endpoint {
                host: "cache.redis.azure.net".into(),
                port: 10000,
                tls: true
            }
        );
        assert_eq!(e.to_string(), "cache.redis.azure.net:10000");
        let p = Endpoint::parse("redis://127.0.0.1").unwrap();
        assert_eq!((p.port, p.tls), (6379, false));
        let v6 = Endpoint::parse("rediss://[::1]:6380").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.to_string()),
            ("::1", "[::1]:6380".to_string())
        );
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("rediss://user:pw@h:6380"),
            "rediss://user:***@h:6380"
        );
        assert_eq!(redact_url("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(redact_url("rediss://pw@h/0"), "rediss://***@h/0");
        assert_eq!(redact_url("rediss://u:p@ss@h"), "rediss://u:***@h");
        assert_eq!(redact_url("rediss://h:1/a@b"), "rediss://h:1/a@b");
        assert_eq!(redact_url("h:1"), "h:1");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert_eq!(
            Endpoint::parse("http://x:1"),
            Err(EndpointError::Scheme("http".into()))
        );
        assert_eq!(
            Endpoint::parse("rediss://u:p@x:1"),
            Err(EndpointError::Credentials)
        );
        assert_eq!(Endpoint::parse("rediss://x:1/2"), Err(EndpointError::Path));
        assert!(matches!(
            Endpoint::parse("x:1"),
            Err(EndpointError::Scheme(_))
        ));
    }
}
