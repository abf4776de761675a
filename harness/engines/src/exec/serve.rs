//! The adapter side of the protocol, for engines written in Rust: any
//! [`EngineAdapter`] served over JSON lines. `fobsim adapter --engine
//! builtin` is fobsim's own engine behind it; `fobsim run --engine
//! 'exec:fobsim adapter --engine builtin'` then gives the same transcripts
//! as `--engine builtin` (the protocol's round-trip test, and the baseline
//! of its overhead benchmark).

use std::io::{BufRead, Write};

use fobsim_core::Timestamp;
use fobsim_harness::adapter::{EngineAdapter, has};
use serde_json::{Value, json};

use super::protocol::{self, Command, Outcome};

/// Serve `adapter` over the protocol: read messages from `input`, write
/// one answer line per message to `output` (flushed), until `input` ends.
/// A malformed message gets an `error` answer (with `"id": null` when it
/// has no id); nothing on the input makes this panic.
///
/// # Errors
/// Reading `input` or writing `output` failed.
pub fn serve(
    adapter: &mut dyn EngineAdapter,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut now: Option<Timestamp> = None;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (id, outcome, detail) = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => {
                let id = o.get("id").cloned().unwrap_or(Value::Null);
                let (outcome, detail) = match protocol::parse_command(&o, now) {
                    Ok(c) => handle(adapter, &mut now, c),
                    Err(e) => (Outcome::Error, Value::String(format!("bad message: {e}"))),
                };
                (id, outcome, detail)
            }
            Ok(_) => (
                Value::Null,
                Outcome::Error,
                Value::String("bad message: not a JSON object".into()),
            ),
            Err(e) => (
                Value::Null,
                Outcome::Error,
                Value::String(format!("bad message: not JSON ({e})")),
            ),
        };
        let mut out = protocol::answer_line(&id, outcome, detail);
        out.push('\n');
        output.write_all(out.as_bytes())?;
        output.flush()?;
    }
    Ok(())
}

fn handle(
    adapter: &mut dyn EngineAdapter,
    now: &mut Option<Timestamp>,
    command: Command,
) -> (Outcome, Value) {
    match command {
        Command::Hello { protocol: p } if p != protocol::VERSION => (
            Outcome::Error,
            Value::String(format!(
                "this adapter speaks protocol {}, fobsim asked for {p}",
                protocol::VERSION
            )),
        ),
        Command::Hello { .. } => {
            let caps: Vec<&str> = adapter.capabilities().iter().map(|c| c.as_str()).collect();
            (
                Outcome::Ok,
                json!({"protocol": protocol::VERSION, "engine": adapter.name(), "capabilities": caps}),
            )
        }
        Command::SetTime(t) => {
            *now = Some(t);
            (Outcome::Ok, Value::Null)
        }
        Command::Reset(setup) => match adapter.begin(&setup) {
            Ok(()) => (Outcome::Ok, Value::Null),
            Err(e) => protocol::adapter_error_detail(&e),
        },
        Command::Operation(request) => {
            let Some(t) = *now else {
                return (
                    Outcome::Error,
                    Value::String("an operation before any set_time".into()),
                );
            };
            if !has(adapter, request.capability()) {
                return (
                    Outcome::Error,
                    Value::String(format!(
                        "capability {} is not declared",
                        request.capability().as_str()
                    )),
                );
            }
            match adapter.call(t, &request) {
                Ok(answer) => protocol::answer_detail(&answer),
                Err(e) => protocol::adapter_error_detail(&e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fobsim_harness::testing::ModelEngine;

    fn run(lines: &str) -> Vec<Value> {
        let mut engine = ModelEngine::new();
        let mut out = Vec::new();
        serve(&mut engine, lines.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn garbage_gets_error_answers_not_a_panic() {
        let out = run(
            "hello\n[1]\n{\"id\":3}\n{\"id\":4,\"op\":\"fly\"}\n\n{\"id\":5,\"op\":\"outbox\"}\n",
        );
        assert_eq!(out.len(), 5);
        for (a, id) in out
            .iter()
            .zip([Value::Null, Value::Null, json!(3), json!(4), json!(5)])
        {
            assert_eq!(a["id"], id);
            assert_eq!(a["outcome"], "error", "{a}");
        }
        assert!(
            out[4]["detail"]
                .as_str()
                .unwrap()
                .contains("before any set_time")
        );
    }

    #[test]
    fn hello_reset_and_an_operation() {
        let mut s = String::new();
        s.push_str(&protocol::hello(1).to_string());
        s.push('\n');
        s.push_str(&protocol::set_time(2, Timestamp::from_secs(1_767_225_600)).to_string());
        s.push('\n');
        let setup = fobsim_harness::adapter::Setup {
            scenario: "x".into(),
            account: fobsim_harness::adapter::Account::default(),
            users: vec![("alice".into(), "pw".into())],
            access_keys: Vec::new(),
            seeds: Vec::new(),
            settings: vec![("no_such_setting".into(), "1".into())],
            start: Timestamp::from_secs(1_767_225_600),
        };
        s.push_str(&protocol::reset(3, &setup).to_string());
        s.push('\n');
        let setup = fobsim_harness::adapter::Setup {
            settings: Vec::new(),
            ..setup
        };
        s.push_str(&protocol::reset(4, &setup).to_string());
        s.push('\n');
        s.push_str(r#"{"id":5,"op":"list_devices","who":"alice"}"#);
        s.push('\n');
        let out = run(&s);
        assert_eq!(out[0]["detail"]["protocol"], 1);
        assert_eq!(out[0]["detail"]["engine"], "model");
        assert_eq!(out[1]["outcome"], "ok");
        assert_eq!(out[2]["outcome"], "rejected");
        assert_eq!(out[2]["detail"]["setting"], "no_such_setting");
        assert_eq!(out[3]["outcome"], "ok");
        assert_eq!(out[4]["id"], 5);
        assert_eq!(out[4]["detail"]["devices"], json!([]));
    }
}
