//! The real cluster clients (redis-py, ioredis) and their workloads (tests/clients/): installed,
//! pinned, under .cache/clients/ by tests/clients/install.sh, and run as child processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Clients {
    python: PathBuf,
    node_modules: PathBuf,
}

impl Clients {
    /// Installs the client libraries if they are not there yet.
    pub fn install() -> Clients {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/install.sh");
        let out = Command::new(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/clients/install.sh");
        assert!(
            out.status.success(),
            "installing the client libraries failed"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        Clients {
            python: PathBuf::from(lines.next().expect("the python path")),
            node_modules: PathBuf::from(lines.next().expect("the node_modules path")),
        }
    }

    /// Starts the redis-py and the ioredis workload against `port` for `seconds`.
    pub fn start(&self, port: u16, seconds: u64) -> (Child, Child) {
        let (port, seconds) = (port.to_string(), seconds.to_string());
        let py = Command::new(&self.python)
            .args([&workload("cluster_workload.py"), &port, &seconds])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the redis-py workload");
        let js = Command::new("node")
            .args([&workload("cluster_workload.js"), &port, &seconds])
            .env("NODE_PATH", &self.node_modules)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the ioredis workload");
        (py, js)
    }

    /// Starts the workload written for one Redis (redis-py's plain client) against `port`.
    pub fn start_plain(&self, port: u16, seconds: u64) -> Child {
        self.start_plain_resp(port, seconds, 2)
    }

    /// [`Clients::start_plain`] speaking RESP `protocol` (2 or 3), on keys of its own.
    pub fn start_plain_resp(&self, port: u16, seconds: u64, protocol: u8) -> Child {
        Command::new(&self.python)
            .args([
                &workload("plain_workload.py"),
                &port.to_string(),
                &seconds.to_string(),
                &protocol.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the plain redis-py workload")
    }
}

fn workload(path: &str) -> String {
    format!("{}/tests/clients/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Waits for both workloads and demands that each ran clean; on failure the message holds its
/// summary and redauth's cluster, warning and close lines.
pub fn assert_clean(py: Child, js: Child, redauth: &super::Redauth) {
    assert_all_clean(vec![("redis-py", py), ("ioredis", js)], redauth);
}

/// Waits for every workload and demands that each ran clean (see [`assert_clean`]).
pub fn assert_all_clean(workloads: Vec<(&str, Child)>, redauth: &super::Redauth) {
    assert_clean_but_for_stalls(workloads, redauth, || 0);
}

/// Waits for every workload, as [`assert_all_clean`] does, but accepts the errors that the
/// expiry closes `stalled` counts (once the workloads ended) explain: closes the server caused by
/// holding a re-authentication redauth sent in time behind a paused write (see
/// `tests/cluster_entra.rs`). A command in flight on such a connection is aborted with it, which
/// a cluster client reports. A workload that did not run clean passes only when it had errors,
/// each such an abort, no more of them in all than closes, and lost no message.
pub fn assert_clean_but_for_stalls(
    workloads: Vec<(&str, Child)>,
    redauth: &super::Redauth,
    stalled: impl FnOnce() -> usize,
) {
    let finished: Vec<(String, bool)> = workloads
        .into_iter()
        .map(|(name, child)| finish(name, child))
        .collect();
    let stalled = stalled();
    let mut explained: u64 = 0;
    for (summary, clean) in &finished {
        if *clean {
            continue;
        }
        let json = summary.split_once(": ").map_or("", |(_, j)| j.trim());
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let errors = parsed["error_count"].as_u64().unwrap_or(u64::MAX);
        let aborted = parsed["errors"].as_array().is_some_and(|all| {
            all.iter().all(|e| {
                e.as_str()
                    .is_some_and(|e| e.to_lowercase().contains("connection close"))
            })
        });
        let delivered = ["classic", "sharded"]
            .iter()
            .all(|k| parsed["published"][k] == parsed["received"][k]);
        explained = explained.saturating_add(errors);
        let log: String = redauth
            .logs()
            .lines()
            .filter(|l| l.contains("cluster") || l.contains("WARN") || l.contains("closed"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            errors > 0 && aborted && delivered && explained <= stalled as u64,
            "errors or lost messages ({stalled} stalled closes explain at most as many aborted commands): {summary}\nredauth:\n{log}"
        );
    }
}

/// Waits for a workload; its summary and whether it ran clean.
fn finish(name: &str, child: Child) -> (String, bool) {
    let out = child.wait_with_output().expect("waiting for a workload");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    (format!("{name}: {stdout}"), out.status.success())
}
