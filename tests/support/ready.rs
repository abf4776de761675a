//! A `fobsim` command that says it is up with one JSON line on stdout
//! (`up --json`, `serve`, `emulate --json`): started with stdout piped,
//! that line read and parsed, the process killed and reaped when dropped.

// Each test file that includes this uses part of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};

/// A started command and its ready line.
pub struct Ready {
    /// The process (killed and reaped on drop).
    pub child: Child,
    /// Its first line of output, parsed.
    pub json: serde_json::Value,
}

impl Ready {
    /// Start `cmd` with its stdout piped (its stderr as the caller set
    /// it: piped, it goes into the panic message when the first line is
    /// not JSON) and read its ready line. `what` names it in that message.
    pub fn start(mut cmd: Command, what: &str) -> Ready {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        match serde_json::from_str(&line) {
            Ok(json) => Ready { child, json },
            Err(e) => {
                // Stopped first: its stderr then ends.
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                let _ = child.wait();
                panic!("{what} did not start: {e}: {line:?}\n{err}")
            }
        }
    }

    /// The string `key` of the ready line.
    pub fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.json))
            .to_string()
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
