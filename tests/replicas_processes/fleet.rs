//! The parent's side of the replica processes: starting them (the test binary re-executed
//! with [`REPLICA_ARG`]), reading what they print, killing one, and collecting their ends.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::setup::{Line, REPLICA_ARG, ReplicaSettings, Report};

/// Something a replica process printed, or the end of its output.
#[derive(Debug)]
pub enum Heard {
    Line(Line),
    /// A line that is not a [`Line`]: a replica that speaks otherwise is broken.
    Garbled(String),
    Closed,
}

/// One replica process.
pub struct Replica {
    pub settings: ReplicaSettings,
    pub pid: u32,
    child: Child,
    /// Held open: a replica stops when it closes (see `replica::exit_with_parent`).
    stdin: Option<ChildStdin>,
    report: Option<Report>,
    closed: bool,
}

/// How one replica ended.
#[derive(Debug)]
pub struct Ended {
    pub settings: ReplicaSettings,
    pub pid: u32,
    pub status: ExitStatus,
    pub report: Option<Report>,
}

impl Ended {
    /// Whether it died of SIGKILL.
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(9)
    }
}

/// The replica processes of one scenario; every one still running is killed when dropped.
pub struct Fleet {
    pub replicas: Vec<Replica>,
    heard: Receiver<(usize, Instant, Heard)>,
}

impl Fleet {
    /// Starts one process per settings.
    pub fn start(all: Vec<ReplicaSettings>) -> Fleet {
        let exe = std::env::current_exe().expect("the test binary's path");
        let (tell, heard) = mpsc::channel();
        let mut replicas = Vec::new();
        for (index, settings) in all.into_iter().enumerate() {
            let json = serde_json::to_string(&settings).expect("settings are JSON");
            let mut child = Command::new(&exe)
                .arg(REPLICA_ARG)
                .arg(json)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start replica {}: {e}", settings.name));
            let stdout = child.stdout.take().expect("a piped stdout");
            let tell = tell.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let heard = serde_json::from_str(&line)
                        .map_or_else(|_| Heard::Garbled(line), Heard::Line);
                    if tell.send((index, Instant::now(), heard)).is_err() {
                        return;
                    }
                }
                let _ = tell.send((index, Instant::now(), Heard::Closed));
            });
            replicas.push(Replica {
                pid: child.id(),
                stdin: child.stdin.take(),
                settings,
                child,
                report: None,
                closed: false,
            });
        }
        Fleet { replicas, heard }
    }

    /// The next line any replica printed within `timeout`, or `None` in its place when the
    /// replica's output ended. Reports are kept for [`finish`](Self::finish) as well as
    /// returned; a garbled line fails the test.
    pub fn next(&mut self, timeout: Duration) -> Option<(usize, Instant, Option<Line>)> {
        let (index, at, heard) = self.heard.recv_timeout(timeout).ok()?;
        let replica = &mut self.replicas[index];
        match heard {
            Heard::Garbled(line) => panic!("replica {} printed {line:?}", replica.settings.name),
            Heard::Closed => {
                replica.closed = true;
                Some((index, at, None))
            }
            Heard::Line(line) => {
                if let Line::Report(report) = &line {
                    replica.report = Some(report.clone());
                }
                Some((index, at, Some(line)))
            }
        }
    }

    /// Waits until every replica has said it is ready; a replica that ends first fails the
    /// test.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut ready = vec![false; self.replicas.len()];
        while ready.contains(&false) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((index, _, line)) = self.next(left) else {
                let late: Vec<_> = self
                    .replicas
                    .iter()
                    .zip(&ready)
                    .filter(|(_, ready)| !**ready)
                    .map(|(r, _)| r.settings.name.clone())
                    .collect();
                panic!("replicas not ready within {timeout:?}: {late:?}");
            };
            let replica = &mut self.replicas[index];
            match line {
                Some(Line::Ready { .. }) => ready[index] = true,
                Some(line) => panic!(
                    "replica {} printed {line:?} before it was ready",
                    replica.settings.name
                ),
                None => panic!(
                    "replica {} ended before it was ready: {:?}",
                    replica.settings.name,
                    replica.child.wait()
                ),
            }
        }
    }

    /// Throws away every line printed so far.
    pub fn drain(&mut self) {
        while self.next(Duration::ZERO).is_some() {}
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        replica
            .child
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill {}: {e}", replica.settings.name));
        replica.child.wait().expect("the killed replica's status");
    }

    /// Waits for every replica to end, within `timeout`, and collects how each ended.
    pub fn finish(mut self, timeout: Duration) -> Vec<Ended> {
        let deadline = Instant::now() + timeout;
        while self.replicas.iter().any(|r| !r.closed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let running: Vec<_> = self
                    .replicas
                    .iter()
                    .filter(|r| !r.closed)
                    .map(|r| r.settings.name.clone())
                    .collect();
                panic!("replicas still running after {timeout:?}: {running:?}");
            }
            if let Some((index, _, Some(line))) = self.next(left) {
                assert!(
                    matches!(line, Line::Report(_) | Line::RefreshSending { .. }),
                    "replica {} printed {line:?} late",
                    self.replicas[index].settings.name
                );
            }
        }
        let mut ended = Vec::new();
        for mut replica in std::mem::take(&mut self.replicas) {
            drop(replica.stdin.take());
            let status = replica.child.wait().expect("a replica's status");
            ended.push(Ended {
                settings: replica.settings,
                pid: replica.pid,
                status,
                report: replica.report,
            });
        }
        ended
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
    }
}
