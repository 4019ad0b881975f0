//! The emulated cache's storage: a real, plain `redis-server` on loopback.
//!
//! [`Backend::start`] runs `redis-server` on a free 127.0.0.1 port from a
//! fresh directory under the system temp dir, without persistence
//! (`save ""`, `appendonly no`). The `default` user gets a random admin
//! password; the identity's object id becomes a Redis ACL user with all
//! permissions and its own random password, which only the TLS front knows
//! and puts in place of a valid token. Passwords go in a mode-0600 config
//! file, never on the command line. The process is killed and its directory
//! removed when the [`Backend`] is dropped.

use super::random;
use bytes::BytesMut;
use redauth::resp::{encode, ReplyScanner};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long redis-server gets to start answering.
const STARTUP: Duration = Duration::from_secs(10);

/// Attempts with a new port when the one picked was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// Why the backend could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0} not found: install redis-server (apt-get install redis-server)")]
    NotFound(String),
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: io::Error,
    },
    #[error("redis-server exited while starting ({status}); the end of its log: {log}")]
    Exited { status: String, log: String },
    #[error("redis-server on {0} did not answer within {STARTUP:?}")]
    Timeout(SocketAddr),
    #[error("redis-server refused {what}: {reply}")]
    Refused { what: &'static str, reply: String },
}

fn io_error(doing: impl Into<String>) -> impl FnOnce(io::Error) -> BackendError {
    let doing = doing.into();
    move |source| BackendError::Io { doing, source }
}

/// Where and how a backend runs: its address, its `default` user's password
/// and extra `redis.conf` lines (a cluster node's).
#[derive(Clone)]
pub struct Shape {
    pub addr: SocketAddr,
    pub admin_password: String,
    pub extra_config: String,
}

/// A running redis-server with an ACL user for the emulated identity.
pub struct Backend {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    admin_password: String,
    user: String,
    user_password: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("pid", &self.child.id())
            .field("dir", &self.dir)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Starts `program` (a path, or a name looked up in `PATH`) and creates the
    /// ACL user `user` (the identity's object id).
    pub async fn start(program: &Path, user: &str) -> Result<Backend, BackendError> {
        let mut attempt = 1;
        loop {
            match Backend::start_once(program, user).await {
                Err(BackendError::Exited { log, .. })
                    if attempt < PORT_ATTEMPTS && log.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(program: &Path, user: &str) -> Result<Backend, BackendError> {
        let shape = Shape {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)),
            admin_password: random::secret(),
            extra_config: String::new(),
        };
        Backend::start_shaped(program, user, shape).await
    }

    /// Starts `program` as `shape` says, with the ACL user `user`.
    pub async fn start_shaped(
        program: &Path,
        user: &str,
        shape: Shape,
    ) -> Result<Backend, BackendError> {
        let Shape {
            addr,
            admin_password,
            extra_config,
        } = shape;
        let dir = std::env::temp_dir().join(format!(
            "redauth-emulator-{}-{}",
            std::process::id(),
            &random::secret()[..12]
        ));
        std::fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let config = dir.join("redis.conf");
        let text = config_text(addr, &dir, &admin_password) + &extra_config;
        write_private(&config, &text)?;
        let spawned = Command::new(program)
            .arg(&config)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(match e.kind() {
                    io::ErrorKind::NotFound => {
                        BackendError::NotFound(program.display().to_string())
                    }
                    _ => BackendError::Io {
                        doing: format!("starting {}", program.display()),
                        source: e,
                    },
                });
            }
        };
        // From here on, dropping `backend` kills the child and cleans up.
        let mut backend = Backend {
            child,
            addr,
            dir,
            admin_password,
            user: user.to_string(),
            user_password: random::secret(),
        };
        let mut admin = backend.connect_admin().await?;
        let setuser = [
            "ACL",
            "SETUSER",
            user,
            "on",
            &format!(">{}", backend.user_password),
            "~*",
            "&*",
            "+@all",
        ];
        admin.call(&setuser, "ACL SETUSER").await?;
        tracing::debug!(%addr, pid = backend.child.id(), "emulator: redis-server backend ready");
        Ok(backend)
    }

    /// Waits until the server accepts the admin password and answers PING.
    async fn connect_admin(&mut self) -> Result<AdminConnection, BackendError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(io_error("checking on redis-server"))?
            {
                return Err(BackendError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if let Ok(stream) = TcpStream::connect(self.addr).await {
                let mut admin = self.authenticated(stream).await?;
                match admin.call(&["PING"], "PING").await {
                    Ok(_) => return Ok(admin),
                    Err(BackendError::Refused { reply, .. }) if reply.starts_with("-LOADING") => {}
                    Err(e) => return Err(e),
                }
            }
            if started.elapsed() > STARTUP {
                return Err(BackendError::Timeout(self.addr));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs one command as the `default` user on a connection of its own
    /// (cluster administration: `CLUSTER INFO`, `CLUSTER FAILOVER`…); the
    /// reply as RESP text. `what` names it in errors.
    pub async fn admin(&self, args: &[&str], what: &'static str) -> Result<String, BackendError> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(io_error(format!("connecting to {}", self.addr)))?;
        let reply = self.authenticated(stream).await?.call(args, what).await?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// `stream`, authenticated as the `default` user.
    async fn authenticated(&self, stream: TcpStream) -> Result<AdminConnection, BackendError> {
        let mut admin = AdminConnection {
            stream,
            buf: BytesMut::new(),
        };
        admin
            .call(&["AUTH", &self.admin_password], "the admin password")
            .await?;
        Ok(admin)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// The plain address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ACL user created for the identity (its object id).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// That user's password: a secret the front substitutes for valid tokens.
    pub fn user_password(&self) -> &str {
        &self.user_password
    }

    /// The `default` user's password, for tests that inspect the server
    /// directly (`CLIENT LIST`, `CLIENT KILL`). A secret.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16, BackendError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_error("finding a free port for redis-server"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("finding a free port for redis-server"))?
        .port())
}

fn config_text(addr: SocketAddr, dir: &Path, admin_password: &str) -> String {
    let dir = quote(&dir.display().to_string());
    let (ip, port) = (addr.ip(), addr.port());
    format!(
        "port {port}\nbind {ip}\ndaemonize no\nsave \"\"\nappendonly no\n\
         dir {dir}\nlogfile redis.log\nrequirepass {admin_password}\n"
    )
}

/// A double-quoted redis.conf string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write_private(path: &Path, text: &str) -> Result<(), BackendError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(io_error(format!("writing {}", path.display())))
}

/// One connection as the `default` user, for setting the server up.
struct AdminConnection {
    stream: TcpStream,
    buf: BytesMut,
}

impl AdminConnection {
    /// Sends a command and returns its reply; an error reply is
    /// [`BackendError::Refused`]. `what` names the command in errors (the
    /// arguments may hold passwords).
    async fn call(&mut self, args: &[&str], what: &'static str) -> Result<BytesMut, BackendError> {
        let doing = || format!("talking to redis-server about {what}");
        self.stream
            .write_all(&encode::command(args))
            .await
            .map_err(io_error(doing()))?;
        let mut scanner = ReplyScanner::default();
        let mut scanned = 0;
        loop {
            let progress = scanner
                .advance(&self.buf[scanned..])
                .map_err(|e| io_error(doing())(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            scanned += progress.consumed;
            if progress.done {
                let reply = self.buf.split_to(scanned);
                if reply.first() == Some(&b'-') {
                    let text = String::from_utf8_lossy(&reply).trim_end().to_string();
                    return Err(BackendError::Refused { what, reply: text });
                }
                return Ok(reply);
            }
            let read = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(io_error(doing()))?;
            if read == 0 {
                return Err(io_error(doing())(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_quotes_the_directory() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 6379));
        let text = config_text(addr, Path::new("/tmp/a \"b\""), "pw");
        assert!(text.contains("dir \"/tmp/a \\\"b\\\"\"\n"), "{text}");
        assert!(text.contains("save \"\"\n"));
        assert!(text.contains("requirepass pw\n"));
    }

    #[tokio::test]
    async fn a_missing_binary_says_how_to_install_it() {
        let err = Backend::start(Path::new("/nonexistent/redis-server"), "u")
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::NotFound(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "/nonexistent/redis-server not found: install redis-server (apt-get install redis-server)"
        );
    }
}
