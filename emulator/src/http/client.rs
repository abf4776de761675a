//! A minimal blocking HTTP/1.1 client with keep-alive, for the tests and
//! the press-latency benchmark of the panel server (plain HTTP on
//! loopback; answers with `Content-Length`, as [`super::server`] sends).

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One connection to a panel server.
#[derive(Debug)]
pub struct PanelClient {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

/// An answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` if it is not).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl PanelClient {
    /// Connect to `addr`.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(PanelClient {
            addr,
            reader: BufReader::new(s),
        })
    }

    /// Send one request (a JSON body with `Content-Type:
    /// application/json` when `json` is given) and read the answer.
    ///
    /// # Errors
    /// IO errors, or an answer that is not HTTP/1.1 with a `Content-Length`.
    pub fn request(&mut self, method: &str, path: &str, json: Option<&str>) -> io::Result<Answer> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        let body = json.unwrap_or("");
        if json.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.send_raw(format!("{head}{body}").as_bytes())
    }

    /// Send raw bytes (one whole request) and read the answer.
    ///
    /// # Errors
    /// IO errors, or an answer that is not HTTP/1.1 with a `Content-Length`.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<Answer> {
        self.reader.get_mut().write_all(bytes)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                let n = n.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if n == "content-length" {
                    len = v.parse().map_err(|_| bad("bad content-length"))?;
                }
                headers.push((n, v));
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}
