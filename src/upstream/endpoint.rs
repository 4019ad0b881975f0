//! The upstream URL: `rediss://host:port` (TLS) or `redis://host:port`.

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
    #[error("credentials in the URL are not accepted; use --username and --password-file")]
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
