//! Fobs driven through real third-party serial clients: socat and picocom
//! (Debian packages `socat`, `picocom`). A missing tool fails the test with
//! an install hint; these tests never skip.
//!
//! socat bridges a Unix socket the test talks to onto the pty (socat opens
//! the pty and sets its own termios), so the conversation is line by line
//! with no timing involved; picocom is run as a scripted terminal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fobsim_core::derive_secret;
use fobsim_core::{Timestamp, Totp};
use fobsim_emulator::FleetSpec;
use fobsim_emulator::testing::SerialTestbed;
use fobsim_firmware::{Drift, preset};

const TIMEOUT: Duration = Duration::from_secs(10);
const START: Timestamp = Timestamp::from_secs(1_800_000_000);

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg(if tool == "socat" { "-V" } else { "--help" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{tool}` is not installed: this test drives the emulator through it and \
         never skips. Install it: `apt-get install -y socat picocom`"
    );
}

fn testbed() -> SerialTestbed {
    let mut spec = FleetSpec::uniform("gaht", 1, 9).unwrap();
    spec.fobs[0].drift = Drift {
        offset_ms: -73_250,
        ppm: 20.0,
        jitter_ms: 0,
    };
    SerialTestbed::start(&spec, START, true).unwrap()
}

/// One socat process bridging a Unix socket to the pty, and our end of it.
struct Socat {
    child: Child,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    _dir: tempfile::TempDir,
}

impl Socat {
    fn connect(pty: &Path) -> Socat {
        Socat::connect_with(pty, "raw,echo=0")
    }

    /// `options`: socat's tty options for the pty (`raw,echo=1`, ...).
    fn connect_with(pty: &Path, options: &str) -> Socat {
        require("socat");
        let dir = tempfile::tempdir().unwrap();
        let sock: PathBuf = dir.path().join("s");
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{}", sock.display()))
            .arg(format!("{},{options}", pty.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn socat");
        let deadline = Instant::now() + TIMEOUT;
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("socat did not listen on {}: {e}", sock.display()),
            }
        };
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Socat {
            child,
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            _dir: dir,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("a reply line");
        assert!(l.ends_with("\r\n"), "replies end with CRLF: {l:?}");
        l.trim_end().to_string()
    }

    fn ask(&mut self, cmd: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        self.line()
    }

    /// Half-close our end; socat closes the pty, passes on what is left and
    /// exits.
    fn close(mut self) {
        self.writer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut self.reader, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "socat: {status}");
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The RFC 6238 code of the test fob at device time `device_ms`.
fn rfc_code(device_ms: i64) -> String {
    let m = preset("gaht").unwrap();
    let secret = derive_secret(9, &m.serial(1).unwrap(), m.secret_len).unwrap();
    let totp = Totp::new(m.algorithm, secret.expose(), 6, 30, 0).unwrap();
    let secs = u64::try_from(device_ms).unwrap() / 1000;
    totp.code_at(secs).unwrap().to_string()
}

#[test]
fn socat_press_matches_the_rfc_code_at_the_fobs_device_time() {
    let tb = testbed();
    // A year on: the +20 ppm crystal has gained about 631 s.
    tb.advance(31_557_600_000);
    let mut s = Socat::connect(&tb.ports()[0].path);
    let info = s.ask("INFO");
    assert!(
        info.starts_with("OK serial=GAHT00000001 model=gaht kind=totp digits=6 step=30 "),
        "{info}"
    );
    let clock = s.ask("CLOCK");
    let device_ms: i64 = field(&clock, "device_ms").parse().unwrap();
    let offset: i64 = field(&clock, "offset_ms").parse().unwrap();
    assert!(
        (631_000 - 73_250..=631_200 - 73_250).contains(&offset),
        "{clock}"
    );
    let press = s.ask("PRESS");
    assert_eq!(press, format!("OK {}", rfc_code(device_ms)));
    assert_eq!(s.ask("display"), press, "commands are case-insensitive");
    s.close();
}

#[test]
fn socat_garbage_and_a_disconnect_mid_line_leave_the_fob_answering_the_next_client() {
    let tb = testbed();
    let path = tb.ports()[0].path.clone();
    let mut s = Socat::connect(&path);
    s.send(b"\0\0\0\r\n");
    assert!(s.line().starts_with("ERR 400 "));
    s.send(b"\x80\xffPRESS\n");
    assert!(s.line().starts_with("ERR 400 "));
    assert!(s.ask("SHOW-SECRET").starts_with("ERR 404 "));
    s.send(&vec![b'x'; 1 << 20]);
    assert!(s.line().starts_with("ERR 413 "));
    // Empty lines get no reply: the next line read answers PING.
    s.send(b"\r\n\r\r\n\n");
    assert_eq!(s.ask("PING"), "OK PONG");
    // Replies nobody reads, then half a line, then gone.
    s.send(b"INFO\r\nINFO\r\nPRE");
    s.close();
    assert!(
        tb.wait_connections_ended(0, 1, TIMEOUT),
        "the server saw the client leave"
    );

    let mut s = Socat::connect(&path);
    assert_eq!(s.ask("PING"), "OK PONG");
    let clock = s.ask("CLOCK");
    let device_ms: i64 = field(&clock, "device_ms").parse().unwrap();
    assert_eq!(s.ask("PRESS"), format!("OK {}", rfc_code(device_ms)));
    s.close();
}

#[test]
fn picocom_reads_the_code() {
    require("picocom");
    let tb = testbed();
    let path = tb.ports()[0].path.clone();
    let mut child = Command::new("picocom")
        .args(["-q", "-b", "115200", "--exit-after", "1500"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picocom");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CLOCK\r\nPRESS\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.starts_with("OK ") || l.starts_with("ERR "))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "picocom printed {text:?} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let device_ms: i64 = field(lines[0], "device_ms").parse().unwrap();
    assert_eq!(lines[1], format!("OK {}", rfc_code(device_ms)));
}

#[test]
fn socat_with_echo_on_does_not_start_a_ping_pong() {
    let tb = testbed();
    let path = tb.ports()[0].path.clone();
    // ECHO (with ECHOCTL) on the client's tty bounces every reply back to
    // the emulator as `OK ...^M^J`, glued to the client's next command.
    let mut s = Socat::connect_with(&path, "raw,echo=1");
    assert_eq!(s.ask("PING one"), "OK PONG one");
    assert_eq!(s.ask("PING two"), "OK PONG two");
    assert!(s.ask("INFO").starts_with("OK serial=GAHT00000001 "));
    assert!(s.ask("FLY").starts_with("ERR 404 unknown command FLY"));
    assert_eq!(s.ask("PING three"), "OK PONG three");
    s.close();
    assert!(tb.wait_connections_ended(0, 1, TIMEOUT));
    // The next client is served as usual.
    let mut s = Socat::connect(&path);
    assert_eq!(s.ask("PING four"), "OK PONG four");
    s.close();
}
