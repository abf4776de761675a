//! The commands a doc marks `# runs until Ctrl-C`: started in their own
//! process group (the caller's `Command` sets it), their first line of
//! output awaited, the rest drained, and the whole group stopped on drop.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Background commands, stopped (their whole process group) on drop.
pub struct Background(Vec<Child>);

impl Background {
    /// None yet.
    pub fn new() -> Self {
        Background(Vec::new())
    }

    /// Start `cmd` and wait up to `wait` for its first line of output
    /// (without the newline; empty if it ended without output). `what`
    /// names it in the panic message.
    pub fn start(&mut self, mut cmd: Command, what: &str, wait: Duration) -> String {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        self.0.push(child);
        let (tx, rx) = mpsc::channel();
        // Hand over the first line; keep reading (a closed pipe would
        // break the command's later output).
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        rx.recv_timeout(wait)
            .unwrap_or_else(|_| panic!("no output within {wait:?} from:\n{what}"))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }
}
