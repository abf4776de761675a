//! `exec:<command>`: bring your own engine. fobsim starts the command (with
//! `sh -c`, as a process-group leader), speaks the JSON-lines protocol of
//! [`protocol`] over its stdin and stdout (its stderr is passed through),
//! and maps every scenario step to a message: `hello` once (the
//! capabilities), `set_time` + `reset` per scenario, `set_time` whenever the
//! scenario's true time moved, one message per [`Request`]. See
//! `docs/adapter-protocol.md`.
//!
//! Every message has a timeout ([`Options`], or the adapter's own
//! `timeout_ms`). An adapter that does not answer in time, exits, or sends
//! a line that is not a protocol answer is stopped; the step is an `error`
//! whose message names what happened and the last lines it sent, and the
//! next scenario starts it again. The process group is stopped by PID at
//! the end (SIGTERM, then SIGKILL) and on interrupt ([`crate::cleanup`]).

pub mod protocol;
pub mod serve;

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fobsim_core::Timestamp;
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Request, Setup, SetupProblem,
};
use serde_json::Value;

use crate::cleanup;
use protocol::{Outcome, Passwords};

pub use serve::serve;

/// The engine-name prefix of this family.
pub const PREFIX: &str = "exec:";

/// How many lines of the adapter's output an error message shows.
const RECENT: usize = 5;

/// Timeouts of the exec adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// For the `hello` answer (the adapter may start its engine first).
    pub hello_timeout: Duration,
    /// For every other answer, unless the adapter's `hello` asks for its
    /// own `timeout_ms`.
    pub request_timeout: Duration,
    /// How long the adapter may take to exit once its stdin is closed,
    /// before its process group is stopped.
    pub exit_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hello_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            exit_grace: Duration::from_secs(2),
        }
    }
}

/// Where the docs are, for setup problems.
const HINT: &str = "run the command by hand: it must answer fobsim's `hello` line on stdout (docs/adapter-protocol.md)";

type Line = Result<String, String>;

/// A running adapter process.
struct Proc {
    child: Child,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    recent: VecDeque<String>,
}

fn read_lines(out: impl Read, tx: &mpsc::Sender<Line>) {
    let mut r = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let mut limited = (&mut r).take(protocol::MAX_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(format!("reading its stdout failed: {e}")));
                return;
            }
        }
        if buf.len() > protocol::MAX_LINE {
            let _ = tx.send(Err(format!(
                "it sent a line longer than {} bytes",
                protocol::MAX_LINE
            )));
            return;
        }
        let line = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(s) => s,
            Err(e) => {
                let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let _ = tx.send(Err(format!("it sent a line that is not UTF-8: {shown:?}")));
                return;
            }
        };
        if tx.send(Ok(line)).is_err() {
            return;
        }
    }
}

fn shorten(s: &str, n: usize) -> String {
    let s = s.trim_end();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

impl Proc {
    fn spawn(command: &str) -> std::io::Result<Proc> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("FOBSIM_ADAPTER_PROTOCOL", protocol::VERSION.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let pid = child.id();
        cleanup::register_process(pid);
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::Builder::new()
                .name(format!("exec-{pid}-stdout"))
                .spawn(move || read_lines(out, &tx))?;
        }
        Ok(Proc {
            child,
            pid,
            stdin,
            lines: rx,
            recent: VecDeque::new(),
        })
    }

    fn recent(&self) -> String {
        if self.recent.is_empty() {
            "it sent nothing on stdout".into()
        } else {
            let lines: Vec<String> = self.recent.iter().map(|l| format!("{l:?}")).collect();
            format!("last lines it sent: {}", lines.join(" | "))
        }
    }

    /// The exit status, waiting up to `wait` for it.
    fn exit_status(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + wait;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Close stdin, give the adapter `grace` to exit, then stop its process
    /// group (SIGTERM, then SIGKILL) and reap it.
    fn stop(mut self, grace: Duration) {
        drop(self.stdin.take());
        let _ = self.exit_status(grace);
        cleanup::stop_group(self.pid, &mut self.child, Duration::from_secs(3));
        cleanup::forget_process(self.pid);
    }
}

/// The exec adapter: an engine behind an adapter program.
pub struct Exec {
    name: String,
    command: String,
    options: Options,
    engine: String,
    caps: Vec<Capability>,
    timeout: Duration,
    proc: Option<Proc>,
    next_id: u64,
    clock: Option<Timestamp>,
    passwords: Passwords,
    messages: u64,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("command", &self.command)
            .field("engine", &self.engine)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed.
enum Failure {
    /// The adapter answered `error` (it keeps running).
    Said(String),
    /// The adapter broke (it has been stopped).
    Broke(String),
}

impl Exec {
    /// Start `command` and say `hello`.
    ///
    /// # Errors
    /// [`SetupProblem`] if the command cannot be started or does not
    /// answer `hello` properly (with what it sent).
    pub fn open(command: &str, options: Options) -> Result<Exec, SetupProblem> {
        let mut me = Exec {
            name: format!("{PREFIX}{command}"),
            command: command.to_string(),
            options,
            engine: String::new(),
            caps: Vec::new(),
            timeout: options.request_timeout,
            proc: None,
            next_id: 0,
            clock: None,
            passwords: Passwords::default(),
            messages: 0,
        };
        me.start().map_err(|missing| SetupProblem {
            engine: me.name.clone(),
            missing,
            hint: HINT.into(),
        })?;
        Ok(me)
    }

    /// The engine's name, as its adapter said in `hello`.
    #[must_use]
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// The adapter's PID (a process-group leader), while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.pid)
    }

    /// Messages exchanged so far (`hello` included).
    #[must_use]
    pub fn messages(&self) -> u64 {
        self.messages
    }

    fn start(&mut self) -> Result<(), String> {
        let p = Proc::spawn(&self.command)
            .map_err(|e| format!("cannot start `sh -c {:?}`: {e}", self.command))?;
        self.proc = Some(p);
        self.clock = None;
        let id = self.id();
        let hello = match self.exchange(&protocol::hello(id), "hello", self.options.hello_timeout) {
            Ok((Outcome::Ok, detail)) => protocol::parse_hello(&detail),
            Ok((_, detail)) => Err(format!(
                "the adapter refused hello: {}",
                protocol::detail_text(&detail)
            )),
            Err(Failure::Said(why)) => Err(format!("the adapter failed on hello: {why}")),
            Err(Failure::Broke(why)) => Err(why),
        };
        let hello = match hello {
            Ok(h) => h,
            Err(e) => {
                self.kill();
                return Err(e);
            }
        };
        if !self.engine.is_empty() && hello.capabilities != self.caps {
            self.kill();
            return Err(format!(
                "the restarted adapter declares other capabilities than at first ({:?} instead of {:?})",
                hello.capabilities, self.caps
            ));
        }
        self.engine = hello.engine;
        self.caps = hello.capabilities;
        self.timeout = hello
            .timeout_ms
            .map_or(self.options.request_timeout, Duration::from_millis);
        Ok(())
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(Duration::ZERO);
        }
    }

    /// Send `msg` and wait for its answer. On any transport failure the
    /// adapter is stopped and the failure says why, with its last lines.
    fn exchange(
        &mut self,
        msg: &Value,
        what: &str,
        timeout: Duration,
    ) -> Result<(Outcome, Value), Failure> {
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or(0);
        let Some(p) = self.proc.as_mut() else {
            return Err(Failure::Broke(
                "the adapter is not running (it was stopped after an earlier failure)".into(),
            ));
        };
        self.messages += 1;
        let mut line = msg.to_string();
        line.push('\n');
        let sent = p
            .stdin
            .as_mut()
            .map(|s| s.write_all(line.as_bytes()).and_then(|()| s.flush()));
        if let Some(Err(e)) = sent {
            let status = p.exit_status(Duration::from_millis(500));
            let why = match status {
                Some(s) => {
                    format!("the adapter exited ({s}) before {what} (message {id}) could be sent")
                }
                None => format!("cannot send {what} (message {id}) to the adapter: {e}"),
            };
            return Err(self.broke(why));
        }
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let got = match self.proc.as_mut() {
                Some(p) => p.lines.recv_timeout(left),
                None => Err(RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(Ok(line)) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    if let Some(p) = self.proc.as_mut() {
                        if p.recent.len() == RECENT {
                            p.recent.pop_front();
                        }
                        p.recent.push_back(shorten(&line, 200));
                    }
                    let inc = match protocol::parse_answer(&line) {
                        Ok(i) => i,
                        Err(e) => {
                            return Err(self.broke(format!(
                                "the adapter sent a line that is not a protocol answer while answering {what} (message {id}): {e} (stdout carries protocol lines only: log to stderr)"
                            )));
                        }
                    };
                    if inc.id != id {
                        return Err(self.broke(format!(
                            "the adapter answered message {} while fobsim waited for {what} (message {id})",
                            inc.id
                        )));
                    }
                    return match inc.outcome {
                        Outcome::Error => Err(Failure::Said(protocol::detail_text(&inc.detail))),
                        o => Ok((o, inc.detail)),
                    };
                }
                Ok(Err(e)) => {
                    return Err(self.broke(format!("{e} while answering {what} (message {id})")));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.broke(format!(
                        "no answer to {what} (message {id}) within {}; the adapter was stopped",
                        fmt_duration(timeout)
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self
                        .proc
                        .as_mut()
                        .and_then(|p| p.exit_status(Duration::from_secs(1)));
                    let why = match status {
                        Some(s) => format!(
                            "the adapter exited ({s}) before answering {what} (message {id})"
                        ),
                        None => format!(
                            "the adapter closed its stdout before answering {what} (message {id})"
                        ),
                    };
                    return Err(self.broke(why));
                }
            }
        }
    }

    fn broke(&mut self, why: String) -> Failure {
        let recent = self
            .proc
            .as_ref()
            .map_or_else(String::new, |p| format!("; {}", p.recent()));
        self.kill();
        Failure::Broke(format!("{why}{recent}"))
    }

    fn transport(&self, message: String) -> AdapterError {
        AdapterError::Transport {
            adapter: self.name.clone(),
            message,
        }
    }

    fn set_time(&mut self, now: Timestamp) -> Result<(), String> {
        if self.clock == Some(now) {
            return Ok(());
        }
        let id = self.id();
        match self.exchange(&protocol::set_time(id, now), "set_time", self.timeout) {
            Ok((Outcome::Ok, _)) => {
                self.clock = Some(now);
                Ok(())
            }
            Ok((_, detail)) => Err(format!(
                "the adapter refused set_time {now}: {}",
                protocol::detail_text(&detail)
            )),
            Err(Failure::Said(why)) => Err(format!("the adapter refused set_time {now}: {why}")),
            Err(Failure::Broke(why)) => Err(why),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(self.options.exit_grace);
        }
    }
}

impl EngineAdapter for Exec {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &[Capability] {
        &self.caps
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        let setup_err = |name: &str, message: String| AdapterError::Setup {
            adapter: name.to_string(),
            message,
        };
        if self.proc.is_none() {
            self.start()
                .map_err(|e| setup_err(&self.name, format!("restarting the adapter: {e}")))?;
        }
        self.passwords = Passwords::of(setup);
        self.set_time(setup.start)
            .map_err(|e| setup_err(&self.name, e))?;
        let id = self.id();
        match self.exchange(&protocol::reset(id, setup), "reset", self.timeout) {
            Ok((Outcome::Ok, _)) => Ok(()),
            Ok((_, detail)) => {
                let key = detail.get("setting").and_then(Value::as_str);
                let message = detail
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| protocol::detail_text(&detail), str::to_string);
                Err(match key {
                    Some(k) => AdapterError::Setting {
                        adapter: self.name.clone(),
                        key: k.to_string(),
                        message,
                    },
                    None => setup_err(&self.name, format!("the adapter refused reset: {message}")),
                })
            }
            Err(Failure::Said(why)) => Err(setup_err(
                &self.name,
                format!("the adapter failed on reset: {why}"),
            )),
            Err(Failure::Broke(why)) => Err(setup_err(&self.name, why)),
        }
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        let what = protocol::op_name(request);
        self.set_time(now).map_err(|e| self.transport(e))?;
        let id = self.id();
        let msg = protocol::operation(id, request, &self.passwords);
        match self.exchange(&msg, what, self.timeout) {
            Ok((outcome, detail)) => protocol::to_answer(request, outcome, &detail).map_err(|e| {
                self.transport(format!(
                    "the adapter's answer to {what} (message {id}) is malformed: {e}"
                ))
            }),
            Err(Failure::Said(why)) => Err(self.transport(format!(
                "the adapter failed on {what} (message {id}), which its declared capability {} promises: {why}",
                request.capability().as_str()
            ))),
            Err(Failure::Broke(why)) => Err(self.transport(why)),
        }
    }
}

/// Open `exec:<command>` (the part after the prefix).
///
/// # Errors
/// [`SetupProblem`] as [`Exec::open`].
pub fn open(command: &str, options: Options) -> Result<Exec, SetupProblem> {
    Exec::open(command, options)
}
