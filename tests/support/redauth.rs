//! Runs the real `redauth` binary as a child process.
//!
//! By default it is started with `--listen 127.0.0.1:0 --log-format json`; the bound address is
//! read from the `listening` log event. The admin endpoints always default to `127.0.0.1:0` here
//! (through `REDAUTH_ADMIN_LISTEN`, which a test may override), so tests never race for the
//! fixed port; [`Redauth::admin_addr`] reads theirs from the logs. Its stderr (and stdout) are collected by background
//! threads for the whole life of the process, so tests can assert on logs at any time. Dropping a
//! [`Redauth`] kills it; [`Redauth::stop`] asks it to shut down (SIGTERM) and returns the logs.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::resp::RespConn;

/// How long redauth may take to log `listening`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start redauth: arguments, environment, and what to wait for.
#[derive(Debug, Clone)]
pub struct RedauthCmd {
    args: Vec<String>,
    env: Vec<(String, String)>,
    default_flags: bool,
    listeners: usize,
}

/// A redauth process that has logged `listening`.
pub struct Redauth {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// The outcome of a run that was expected to end on its own.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stderr: String,
}

/// A `listening` event from the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Default for RedauthCmd {
    fn default() -> Self {
        RedauthCmd {
            args: Vec::new(),
            env: Vec::new(),
            default_flags: true,
            listeners: 1,
        }
    }
}

impl RedauthCmd {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// redauth listening on `port` with JSON logs, its cluster node ports the 16 after it (from
    /// [`super::free_ports`]): cluster mode needs a fixed main port.
    pub fn cluster(port: u16) -> Self {
        Self::new()
            .bare()
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
            ])
            .args(["--cluster-ports", &format!("{}-{}", port + 1, port + 16)])
    }

    /// Do not add `--listen 127.0.0.1:0 --log-format json` (config tests set their own).
    pub fn bare(mut self) -> Self {
        self.default_flags = false;
        self
    }

    /// Wait for `n` `listening` events instead of one.
    pub fn listeners(mut self, n: usize) -> Self {
        self.listeners = n;
        self
    }

    /// The process as [`RedauthCmd::start`] would spawn it, for a test that handles its pipes itself.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redauth"));
        if self.default_flags {
            cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
        }
        cmd.args(&self.args);
        // Only what the test sets may influence configuration.
        // (The cloud SDKs' variables too: a developer's AWS_PROFILE must not reach --auth
        // aws-iam, nor GOOGLE_APPLICATION_CREDENTIALS, GCE_METADATA_HOST or gcloud's
        // CLOUDSDK_CONFIG --auth gcp-iam.)
        const DROPPED: [&str; 5] = ["REDAUTH_", "AWS_", "GOOGLE_", "GCE_", "CLOUDSDK_"];
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if DROPPED.iter().any(|prefix| key_text.starts_with(prefix)) {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.env("REDAUTH_ADMIN_LISTEN", "127.0.0.1:0");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&self) -> Redauth {
        let mut child = self.command().spawn().expect("spawning redauth");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stderr.take().unwrap(), stderr.clone()),
            collect(child.stdout.take().unwrap(), stdout.clone()),
        ];
        Redauth {
            child,
            stderr,
            stdout,
            readers,
        }
    }

    /// Starts redauth and waits until it has logged the expected number of `listening` events.
    pub fn start(self) -> Redauth {
        let mut redauth = self.spawn();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if redauth.listeners().len() >= self.listeners {
                return redauth;
            }
            if let Ok(Some(status)) = redauth.child.try_wait() {
                redauth.join_readers();
                panic!(
                    "redauth exited ({status}) before logging `listening`\nargs: {:?}\n{}",
                    self.args,
                    redauth.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "redauth did not log `listening` {} time(s) within {STARTUP_TIMEOUT:?}\n\
                     args: {:?}\n{}",
                    self.listeners,
                    self.args,
                    redauth.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts redauth and waits until its stderr contains `needle` (for text logs, which
    /// [`RedauthCmd::start`] cannot parse).
    pub fn start_until(self, needle: &str) -> Redauth {
        let mut redauth = self.spawn();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !redauth.logs().contains(needle) {
            if let Ok(Some(status)) = redauth.child.try_wait() {
                redauth.join_readers();
                panic!(
                    "redauth exited ({status}) before logging {needle:?}\n{}",
                    redauth.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "redauth did not log {needle:?} within {STARTUP_TIMEOUT:?}\n{}",
                redauth.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        redauth
    }

    /// Runs redauth expecting it to exit by itself within `timeout` (e.g. a refused config).
    pub fn run_to_exit(self, timeout: Duration) -> Exited {
        let mut redauth = self.spawn();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = redauth.child.try_wait() {
                redauth.join_readers();
                return Exited {
                    status,
                    stderr: redauth.logs(),
                };
            }
            if Instant::now() > deadline {
                panic!(
                    "redauth still running after {timeout:?}; expected it to exit\nargs: {:?}\n{}",
                    self.args,
                    redauth.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Redauth {
    /// Starts redauth with the default flags plus `args`.
    pub fn start<S: Into<String>>(args: impl IntoIterator<Item = S>) -> Redauth {
        RedauthCmd::new().args(args).start()
    }

    /// Everything written to stderr so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// All `listening` events logged so far, in order.
    pub fn listeners(&self) -> Vec<Listener> {
        listening_events(&self.logs())
    }

    /// The first TCP listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listeners()
            .into_iter()
            .find_map(|l| match l {
                Listener::Tcp(addr) => Some(addr),
                Listener::Unix(_) => None,
            })
            .unwrap_or_else(|| panic!("redauth logged no TCP listener\n{}", self.output()))
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// A raw client connection to the first TCP listener.
    pub fn connect(&self) -> RespConn {
        let mut conn = RespConn::connect_addr(self.addr());
        conn.label = format!("through redauth {}", self.addr());
        conn
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin endpoints' address, from the `admin endpoints listening` event (waited for).
    pub fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let logs = self.logs();
            if let Some(event) = log_events(&logs, "admin endpoints listening").first() {
                return event["fields"]["addr"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("admin event without an address: {event}"));
            }
            if Instant::now() > deadline {
                panic!("redauth logged no admin address\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (a `kill` name such as `TERM` or `INT`) without waiting.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for redauth to exit by itself; panics (with the logs) if it has not within `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Exited {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_readers();
                return Exited {
                    status,
                    stderr: self.logs(),
                };
            }
            if Instant::now() > deadline {
                panic!(
                    "redauth still running {timeout:?} later; expected it to exit\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM, waits (up to 10 s, then SIGKILL), and returns the complete stderr.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_readers();
        self.logs()
    }

    /// stderr and stdout, for panic messages.
    pub fn output(&self) -> String {
        format!(
            "--- redauth stderr ---\n{}--- redauth stdout ---\n{}----------------------",
            self.logs(),
            self.stdout.lock().unwrap()
        )
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Redauth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON log events (one per line; other lines are ignored) whose message is `message`.
pub fn log_events(logs: &str, message: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["fields"]["message"] == message)
        .collect()
}

/// Parses `listening` events out of JSON log lines (other lines are ignored).
pub fn listening_events(logs: &str) -> Vec<Listener> {
    log_events(logs, "listening")
        .into_iter()
        .filter_map(|event| {
            let fields = &event["fields"];
            if let Some(addr) = fields["addr"].as_str() {
                Some(Listener::Tcp(
                    addr.parse().expect("`addr` field is a socket address"),
                ))
            } else {
                fields["path"]
                    .as_str()
                    .map(|p| Listener::Unix(PathBuf::from(p)))
            }
        })
        .collect()
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}
