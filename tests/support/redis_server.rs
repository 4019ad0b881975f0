//! A real `redis-server` for one test: TLS on one port (what redauth relays to), plaintext on
//! another (for direct comparison runs), the `default` user disabled, one ACL user with a
//! password. `DEBUG` is enabled so tests can make it emit every RESP3 type (`DEBUG PROTOCOL …`).
//! The server, its certificates and its files live in a `TempDir`; dropping the [`TlsRedis`]
//! kills the server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::certs::Certs;
use super::resp::{show, RespConn};

/// The ACL user redauth authenticates as.
pub const USERNAME: &str = "redauth-test";
/// Its password. Distinctive, so a test can grep logs for it.
pub const PASSWORD: &str = "s3cret-7Hq2xVbW-redauth";

/// Whether the TLS port demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    NotRequired,
    Required,
}

pub struct TlsRedis {
    child: Child,
    dir: TempDir,
    certs: Certs,
    tls_port: u16,
    plain_port: u16,
    password_file: PathBuf,
}

impl TlsRedis {
    /// Starts a server that does not ask for client certificates.
    pub fn start() -> Self {
        Self::start_with(ClientCerts::NotRequired)
    }

    /// Starts a server; retries with fresh ports if another process grabbed one in between.
    pub fn start_with(client_certs: ClientCerts) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redauth-test-")
            .tempdir()
            .expect("creating temp dir");
        let certs = Certs::generate(dir.path());
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).expect("writing password file");
        // Readable by its owner only, as a secret file should be (redauth warns otherwise).
        std::fs::set_permissions(
            &password_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("restricting the password file");

        let log_path = dir.path().join("redis.log");
        for _attempt in 0..5 {
            let (tls_port, plain_port) = two_free_ports();
            let conf = dir.path().join("redis.conf");
            std::fs::write(
                &conf,
                config(dir.path(), &certs, tls_port, plain_port, client_certs),
            )
            .expect("writing redis.conf");
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server (is it on PATH?)");
            if wait_ready(&mut child, tls_port, plain_port, &log_path) {
                let server = TlsRedis {
                    child,
                    dir,
                    certs,
                    tls_port,
                    plain_port,
                    password_file,
                };
                server.assert_ports_are_ours();
                return server;
            }
            // It exited, most likely because another process took a port: try new ports.
            let _ = child.wait();
        }
        panic!(
            "redis-server did not start after 5 attempts; log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// Kills the server (as a crash would), and starts it again on the same ports; waits until
    /// it answers.
    pub fn restart(&mut self) {
        self.kill();
        let log_path = self.dir.path().join("redis.log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut child = Command::new("redis-server")
                .arg(self.dir.path().join("redis.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server");
            if wait_ready(&mut child, self.tls_port, self.plain_port, &log_path) {
                self.child = child;
                return;
            }
            let _ = child.wait();
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not come back on its ports"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Kills the server; [`TlsRedis::restart`] brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }

    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// A directory the test may write into; removed with the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// File holding [`PASSWORD`] (no trailing newline).
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// `rediss://127.0.0.1:<tls port>`.
    pub fn upstream_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The flags that point redauth at this server and authenticate as [`USERNAME`].
    pub fn redauth_args(&self) -> Vec<String> {
        vec![
            "--upstream".into(),
            self.upstream_url(),
            "--ca-file".into(),
            self.certs.ca.display().to_string(),
            "--auth".into(),
            "password".into(),
            "--username".into(),
            USERNAME.into(),
            "--password-file".into(),
            self.password_file.display().to_string(),
        ]
    }

    /// [`TlsRedis::redauth_args`] with the value of `flag` replaced (or added if absent).
    pub fn redauth_args_with(&self, flag: &str, value: &str) -> Vec<String> {
        let mut args = self.redauth_args();
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
        args
    }

    /// A plaintext connection straight to redis-server, already authenticated as [`USERNAME`].
    pub fn direct(&self) -> RespConn {
        let mut conn = RespConn::connect(self.plain_port);
        conn.label = format!("direct 127.0.0.1:{}", self.plain_port);
        let reply = conn.request(&["AUTH", USERNAME, PASSWORD]);
        assert_eq!(reply, b"+OK\r\n", "direct AUTH failed: {}", show(&reply));
        conn
    }

    /// Guards against a port race: the process answering must be the one we spawned.
    fn assert_ports_are_ours(&self) {
        let info = self.direct().request(&["INFO", "server"]);
        let info = String::from_utf8_lossy(&info);
        let pid = format!("process_id:{}\r\n", self.child.id());
        let port = format!("tcp_port:{}\r\n", self.plain_port);
        assert!(
            info.contains(&pid) && info.contains(&port),
            "another redis-server answered on our port: {info}"
        );
    }

    /// The server's log file, for diagnostics.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until both ports accept and the plain one answers; false if the server exited.
fn wait_ready(child: &mut Child, tls_port: u16, plain_port: u16, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let tls_up = std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok();
        if tls_up && plain_answers(plain_port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "redis-server not ready after 10s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn plain_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = [0u8; 64];
    // The default user is off, so an unauthenticated PING gets NOAUTH: that is "ready".
    s.write_all(b"PING\r\n").is_ok() && matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// A port nobody listens on right now (bound to :0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding :0")
        .local_addr()
        .unwrap()
        .port()
}

fn two_free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("binding :0");
    let b = TcpListener::bind("127.0.0.1:0").expect("binding :0");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn config(dir: &Path, certs: &Certs, tls: u16, plain: u16, client_certs: ClientCerts) -> String {
    let auth_clients = match client_certs {
        ClientCerts::NotRequired => "no",
        ClientCerts::Required => "yes",
    };
    format!(
        "bind 127.0.0.1\n\
         port {plain}\n\
         tls-port {tls}\n\
         tls-cert-file {cert}\n\
         tls-key-file {key}\n\
         tls-ca-cert-file {ca}\n\
         tls-auth-clients {auth_clients}\n\
         save \"\"\n\
         appendonly no\n\
         protected-mode no\n\
         enable-debug-command yes\n\
         dir {dir}\n\
         logfile {dir}/redis.log\n\
         user default off\n\
         user {USERNAME} on >{PASSWORD} ~* &* +@all\n",
        cert = certs.server_cert.display(),
        key = certs.server_key.display(),
        ca = certs.ca.display(),
        dir = dir.display(),
    )
}
