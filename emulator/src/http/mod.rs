//! The fob panel and the HTTP+JSON control API (`fobsim emulate --http
//! ADDR`): the OTP counterpart of WebAuthn's virtual-authenticator
//! endpoints, and a live page of the fleet. `docs/control-api.md` is the
//! reference.
//!
//! One implementation with the Unix-socket control plane: every route is
//! translated into a [`fobsim_clock::control::Request`] and carried out by
//! the same [`apply`]; this module only maps routes, bodies and error codes
//! to HTTP. Sans-IO: [`ControlApi::handle`] takes an [`HttpRequest`] and
//! returns an [`HttpReply`]; [`server`] is the hyper shell.
//!
//! Cross-site request forgery: every state-changing request (`POST`,
//! `DELETE`) must carry `Content-Type: application/json` — which a page of
//! another origin cannot send without a CORS preflight, and this server
//! answers no preflight — and, when the browser sends `Origin` or
//! `Sec-Fetch-Site`, come from the same origin. A server bound to a
//! loopback address also refuses any `Host` but its own address,
//! `localhost` and `127.0.0.1`/`[::1]` with its port (DNS rebinding).
//! Nothing the API answers holds a secret.

pub mod client;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use fobsim_clock::TrueClock;
use fobsim_clock::control::{
    BatteryAction, ControlError, ControlErrorCode, Fobs, MAX_REQUEST, Request, Response, apply,
};
use serde_json::{Map, Value, json};

/// The page, its script and its style, embedded in the binary.
const PANEL_HTML: &str = include_str!("panel.html");
const PANEL_JS: &str = include_str!("panel.js");
const PANEL_CSS: &str = include_str!("panel.css");

/// Content-Security-Policy of the panel: nothing but this origin's own
/// script, style and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One HTTP request, as the router sees it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (at most [`MAX_REQUEST`] bytes are looked at).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request without headers or body.
    #[must_use]
    pub fn new(method: &str, path: &str) -> Self {
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same request with a JSON body (and its content type).
    #[must_use]
    pub fn json(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self.header("content-type", "application/json")
    }

    /// The same request with one more header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers besides the length.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        HttpReply {
            status,
            headers: vec![
                ("content-type", content_type.to_string()),
                ("cache-control", "no-store".to_string()),
                ("x-content-type-options", "nosniff".to_string()),
                ("referrer-policy", "no-referrer".to_string()),
                ("x-frame-options", "DENY".to_string()),
            ],
            body,
        }
    }

    fn json(status: u16, v: &Value) -> Self {
        let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        HttpReply::new(status, "application/json", body)
    }

    fn error(status: u16, code: &str, message: &str, field: Option<&str>) -> Self {
        HttpReply::json(
            status,
            &json!({"error": {"code": code, "message": message, "field": field}}),
        )
    }

    /// The body as JSON (`Null` if it is not JSON).
    #[must_use]
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The value of a header.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP status of a control-plane error.
#[must_use]
pub fn status_of(code: ControlErrorCode) -> u16 {
    match code {
        ControlErrorCode::BadRequest | ControlErrorCode::BadValue => 400,
        ControlErrorCode::NoSuchFob => 404,
        ControlErrorCode::SystemClock | ControlErrorCode::Exists | ControlErrorCode::NoFleet => 409,
        ControlErrorCode::TooLong => 413,
    }
}

fn code_name(code: ControlErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn control_error(e: &ControlError) -> HttpReply {
    HttpReply::error(
        status_of(e.code),
        &code_name(e.code),
        &e.message,
        e.field.as_deref(),
    )
}

/// The panel and control API of one clock and one set of fobs.
pub struct ControlApi {
    clock: Arc<TrueClock>,
    fobs: Arc<dyn Fobs>,
    /// `Host` values accepted; `None`: any.
    hosts: Option<Vec<String>>,
}

impl std::fmt::Debug for ControlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlApi")
            .field("clock", &self.clock.source())
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// How a route's answer is shaped.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Clock,
    Fobs,
    Fob,
    Display,
}

impl ControlApi {
    /// The API of `clock` and `fobs`, answering any `Host` (see
    /// [`ControlApi::bound_to`]).
    #[must_use]
    pub fn new(clock: Arc<TrueClock>, fobs: Arc<dyn Fobs>) -> Self {
        ControlApi {
            clock,
            fobs,
            hosts: None,
        }
    }

    /// Served on `addr`: on a loopback address, only requests naming this
    /// server in `Host` are answered (the DNS-rebinding defence).
    #[must_use]
    pub fn bound_to(mut self, addr: SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            let p = addr.port();
            self.hosts = Some(vec![
                addr.to_string(),
                format!("localhost:{p}"),
                format!("127.0.0.1:{p}"),
                format!("[::1]:{p}"),
            ]);
        }
        self
    }

    /// Answer one request. Never panics on any input.
    #[must_use]
    pub fn handle(&self, req: &HttpRequest) -> HttpReply {
        if let Some(reply) = self.refuse(req) {
            return reply;
        }
        let path = req.path.as_str();
        let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let method = req.method.as_str();
        match (method, segs.as_slice()) {
            ("GET" | "HEAD", [""]) => page(PANEL_HTML, "text/html; charset=utf-8", true),
            ("GET" | "HEAD", ["panel.js"]) => {
                page(PANEL_JS, "text/javascript; charset=utf-8", false)
            }
            ("GET" | "HEAD", ["panel.css"]) => page(PANEL_CSS, "text/css; charset=utf-8", false),
            ("GET", ["api", "models"]) => HttpReply::json(
                200,
                &json!({"models": fobsim_firmware::PRESETS.iter().map(|m| json!({
                    "name": m.name, "description": m.description, "digits": m.digits,
                    "period": m.period(),
                })).collect::<Vec<_>>()}),
            ),
            ("GET", ["api", "clock"]) => self.run(Ok(Request::Get), Shape::Clock, 200),
            ("POST", ["api", "clock", op]) => {
                let r = match *op {
                    "freeze" => body(req, &[]).map(|_| Request::Freeze),
                    "resume" => body(req, &[]).map(|_| Request::Resume),
                    "advance" => body(req, &["by"]).and_then(|b| {
                        Ok(Request::Advance {
                            by: required(&b, "by")?,
                        })
                    }),
                    "set" => body(req, &["time"]).and_then(|b| {
                        Ok(Request::Set {
                            time: required(&b, "time")?,
                        })
                    }),
                    _ => return not_found(path),
                };
                self.run(r, Shape::Clock, 200)
            }
            ("GET", ["api", "fobs"]) => self.run(Ok(Request::Fobs), Shape::Fobs, 200),
            ("POST", ["api", "fobs"]) => {
                let r = body(req, &["model", "serial", "offset", "ppm", "jitter"]).and_then(|b| {
                    Ok(Request::Create {
                        model: required(&b, "model")?,
                        serial: optional(&b, "serial")?,
                        offset: optional(&b, "offset")?,
                        ppm: number(&b, "ppm")?,
                        jitter: optional(&b, "jitter")?,
                    })
                });
                self.run(r, Shape::Fob, 201)
            }
            ("GET", ["api", "fobs", serial]) => self.run(
                Ok(Request::Fob {
                    serial: (*serial).to_string(),
                }),
                Shape::Fob,
                200,
            ),
            ("DELETE", ["api", "fobs", serial]) => {
                let r = body(req, &[]).map(|_| Request::Remove {
                    serial: (*serial).to_string(),
                });
                self.run(r, Shape::Fob, 200)
            }
            ("GET", ["api", "fobs", serial, "display"]) => self.run(
                Ok(Request::Fob {
                    serial: (*serial).to_string(),
                }),
                Shape::Display,
                200,
            ),
            ("POST", ["api", "fobs", serial, "press"]) => {
                let r = body(req, &[]).map(|_| Request::Press {
                    serial: (*serial).to_string(),
                });
                self.run(r, Shape::Display, 200)
            }
            ("POST", ["api", "fobs", serial, "drift"]) => {
                let r = body(req, &["offset", "ppm", "jitter"]).and_then(|b| {
                    Ok(Request::Drift {
                        serial: (*serial).to_string(),
                        offset: optional(&b, "offset")?,
                        ppm: number(&b, "ppm")?,
                        jitter: optional(&b, "jitter")?,
                    })
                });
                self.run(r, Shape::Fob, 200)
            }
            ("POST", ["api", "fobs", serial, "battery", action]) => {
                let action = match *action {
                    "pull" => BatteryAction::Pull,
                    "swap" => BatteryAction::Swap,
                    _ => return not_found(path),
                };
                let r = body(req, &[]).map(|_| Request::Battery {
                    serial: (*serial).to_string(),
                    action,
                });
                self.run(r, Shape::Fob, 200)
            }
            _ => match allowed_methods(&segs) {
                Some(allow) => {
                    let mut r = HttpReply::error(
                        405,
                        "method_not_allowed",
                        &format!(
                            "{} is not allowed on {} (allowed: {allow})",
                            clip(method),
                            clip(path)
                        ),
                        None,
                    );
                    r.headers.push(("allow", allow.to_string()));
                    r
                }
                None => not_found(path),
            },
        }
    }

    /// The CSRF and Host checks: `Some(refusal)` or `None` to go on.
    fn refuse(&self, req: &HttpRequest) -> Option<HttpReply> {
        let host = req.get_header("host");
        if let Some(allowed) = &self.hosts
            && !host.is_some_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
        {
            return Some(HttpReply::error(
                403,
                "forbidden_host",
                &format!(
                    "Host {:?} is not this server (use {})",
                    clip(host.unwrap_or("")),
                    allowed[0]
                ),
                None,
            ));
        }
        if matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            return None;
        }
        if let Some(origin) = req.get_header("origin") {
            let same = host.is_some_and(|h| {
                origin.eq_ignore_ascii_case(&format!("http://{h}"))
                    || origin.eq_ignore_ascii_case(&format!("https://{h}"))
            });
            if !same {
                return Some(HttpReply::error(
                    403,
                    "cross_origin",
                    &format!("requests from {:?} are refused", clip(origin)),
                    None,
                ));
            }
        }
        if let Some(site) = req.get_header("sec-fetch-site")
            && !matches!(site, "same-origin" | "none")
        {
            return Some(HttpReply::error(
                403,
                "cross_origin",
                &format!("Sec-Fetch-Site {:?} is refused", clip(site)),
                None,
            ));
        }
        let json = req.get_header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Some(HttpReply::error(
                415,
                "unsupported_media_type",
                "send Content-Type: application/json (also with an empty body): \
                 the defence against cross-site requests",
                None,
            ));
        }
        if req.body.len() > MAX_REQUEST {
            return Some(HttpReply::error(
                413,
                "too_long",
                &format!("the body is longer than {MAX_REQUEST} bytes"),
                None,
            ));
        }
        None
    }

    /// Carry out a request through the control plane and shape the answer.
    fn run(&self, req: Result<Request, ControlError>, shape: Shape, status: u16) -> HttpReply {
        let req = match req {
            Ok(r) => r,
            Err(e) => return control_error(&e),
        };
        let resp: Response = apply(&self.clock, self.fobs.as_ref(), &req);
        if let Some(e) = &resp.error {
            return control_error(e);
        }
        let clock = serde_json::to_value(&resp.clock).unwrap_or(Value::Null);
        let body = match shape {
            Shape::Clock => json!({ "clock": clock }),
            Shape::Fobs => json!({ "clock": clock, "fobs": resp.fobs }),
            Shape::Fob => json!({ "clock": clock, "fob": resp.fob }),
            Shape::Display => {
                let d = resp.display.unwrap_or(fobsim_clock::control::DisplayState {
                    code: None,
                    shown_until: None,
                    device_time: None,
                });
                json!({
                    "serial": resp.fob.as_ref().map(|f| f.serial.clone()),
                    "code": d.code,
                    "shown_until": d.shown_until,
                    "device_time": d.device_time,
                    "now": resp.clock.as_ref().map(|c| c.now.clone()),
                })
            }
        };
        HttpReply::json(status, &body)
    }
}

/// The methods a known path takes; `None` for an unknown path.
fn allowed_methods(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        [""] | ["panel.js" | "panel.css"] => "GET, HEAD",
        ["api", "models" | "clock"] | ["api", "fobs", _, "display"] => "GET",
        ["api", "clock", "freeze" | "resume" | "advance" | "set"]
        | ["api", "fobs", _, "press" | "drift"]
        | ["api", "fobs", _, "battery", "pull" | "swap"] => "POST",
        ["api", "fobs"] => "GET, POST",
        ["api", "fobs", _] => "GET, DELETE",
        _ => return None,
    })
}

fn page(text: &'static str, content_type: &str, csp: bool) -> HttpReply {
    let mut r = HttpReply::new(200, content_type, text.as_bytes().to_vec());
    if csp {
        r.headers.push(("content-security-policy", CSP.to_string()));
    }
    r
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn not_found(path: &str) -> HttpReply {
    HttpReply::error(
        404,
        "not_found",
        &format!("no route {:?} (see docs/control-api.md)", clip(path)),
        None,
    )
}

fn bad(message: impl Into<String>, field: Option<&str>) -> ControlError {
    let e = ControlError::new(ControlErrorCode::BadRequest, message);
    match field {
        Some(f) => e.with_field(f),
        None => e,
    }
}

/// The body: empty (= `{}`) or a JSON object with only `allowed` fields.
fn body(req: &HttpRequest, allowed: &[&str]) -> Result<Map<String, Value>, ControlError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| bad(format!("the body is not JSON: {e}"), None))?;
    let Value::Object(map) = v else {
        return Err(bad("the body must be a JSON object", None));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let k = clip(k);
        let expected = if allowed.is_empty() {
            "this request takes no fields".to_string()
        } else {
            format!("expected one of {}", allowed.join(", "))
        };
        return Err(bad(format!("unknown field `{k}`: {expected}"), Some(&k)));
    }
    Ok(map)
}

fn optional(b: &Map<String, Value>, field: &str) -> Result<Option<String>, ControlError> {
    match b.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(
            format!("field `{field}` must be a string, got {}", kind(other)),
            Some(field),
        )),
    }
}

fn required(b: &Map<String, Value>, field: &str) -> Result<String, ControlError> {
    optional(b, field)?.ok_or_else(|| bad(format!("missing field `{field}`"), Some(field)))
}

fn number(b: &Map<String, Value>, field: &str) -> Result<Option<f64>, ControlError> {
    match b.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(bad(
            format!("field `{field}` must be a number, got {}", kind(other)),
            Some(field),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
