//! The HTTP control API and the fob panel: every route, every error case,
//! the CSRF defence, no secret in any answer, no panic on junk; then the
//! same over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;

use fobsim_clock::TrueClock;
use fobsim_clock::control::Fobs;
use fobsim_core::{Code, Timestamp, Totp};
use fobsim_emulator::http::client::PanelClient;
use fobsim_emulator::http::server::Loopback;
use fobsim_emulator::http::{ControlApi, HttpReply, HttpRequest};
use fobsim_emulator::{Fleet, FleetSpec};
use serde_json::Value;

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const ADDR: &str = "127.0.0.1:8080";

fn fleet(clock: TrueClock) -> Arc<Fleet> {
    Arc::new(Fleet::new(&FleetSpec::uniform("gaht", 2, 7).unwrap(), clock, false).unwrap())
}

fn api_of(f: &Arc<Fleet>) -> ControlApi {
    ControlApi::new(Arc::clone(f.clock()), Arc::clone(f) as Arc<dyn Fobs>)
        .bound_to(ADDR.parse().unwrap())
}

fn setup() -> (Arc<Fleet>, ControlApi) {
    let f = fleet(TrueClock::manual(Timestamp::from_secs(T0)));
    let api = api_of(&f);
    (f, api)
}

fn get(path: &str) -> HttpRequest {
    HttpRequest::new("GET", path).header("host", ADDR)
}

fn post(path: &str, body: &str) -> HttpRequest {
    HttpRequest::new("POST", path)
        .header("host", ADDR)
        .json(body)
}

fn ok(api: &ControlApi, req: &HttpRequest, status: u16) -> Value {
    let r = api.handle(req);
    assert_eq!(
        r.status,
        status,
        "{req:?}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json_body()
}

fn err(r: &HttpReply, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json_body();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    v
}

/// The code a fob of seed 7 shows at device time `t` (seconds).
fn expected_code(f: &Fleet, serial: &str, t: u64) -> String {
    let rec = f
        .seed_records()
        .into_iter()
        .find(|r| r.serial.as_str() == serial)
        .unwrap();
    let totp = Totp::new(rec.algorithm, rec.secret.expose(), 6, 30, 0).unwrap();
    let c: Code = totp.code_for_step(totp.step_at(t).unwrap());
    c.to_string()
}

#[test]
fn press_answers_code_shown_until_and_device_time_and_the_display_follows() {
    let (f, api) = setup();
    let v = ok(&api, &get("/api/fobs/GAHT00000001/display"), 200);
    assert_eq!(v["code"], Value::Null);
    assert_eq!(v["device_time"], "2026-01-01T00:00:00.000Z");

    let v = ok(&api, &post("/api/fobs/GAHT00000001/press", ""), 200);
    assert_eq!(v["serial"], "GAHT00000001");
    assert_eq!(v["code"], expected_code(&f, "GAHT00000001", T0));
    assert_eq!(v["shown_until"], "2026-01-01T00:00:15.000Z");
    assert_eq!(v["device_time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(v["now"], "2026-01-01T00:00:00.000Z");

    // The display shows it, the list too; 15 s later it is blank.
    let v = ok(&api, &get("/api/fobs/GAHT00000001/display"), 200);
    assert_eq!(v["code"], expected_code(&f, "GAHT00000001", T0));
    let v = ok(&api, &get("/api/fobs"), 200);
    assert_eq!(v["fobs"][0]["code"], expected_code(&f, "GAHT00000001", T0));
    assert!(v["fobs"][1].get("code").is_none());
    ok(&api, &post("/api/clock/advance", r#"{"by":"15s"}"#), 200);
    let v = ok(&api, &get("/api/fobs/GAHT00000001/display"), 200);
    assert_eq!(v["code"], Value::Null);
    assert_eq!(v["shown_until"], Value::Null);
}

#[test]
fn clock_routes_move_the_clock() {
    let (_f, api) = setup();
    let v = ok(&api, &get("/api/clock"), 200);
    assert_eq!(v["clock"]["now"], "2026-01-01T00:00:00.000Z");
    assert_eq!(v["clock"]["source"], "manual");
    assert_eq!(v["clock"]["frozen"], true);
    let v = ok(&api, &post("/api/clock/advance", r#"{"by":"-4m"}"#), 200);
    assert_eq!(v["clock"]["now"], "2025-12-31T23:56:00.000Z");
    let v = ok(
        &api,
        &post("/api/clock/set", r#"{"time":"@1111111109"}"#),
        200,
    );
    assert_eq!(v["clock"]["now_ms"], 1_111_111_109_000u64);
    let v = ok(&api, &post("/api/clock/resume", ""), 200);
    assert_eq!(v["clock"]["frozen"], false);
    let v = ok(&api, &post("/api/clock/freeze", "{}"), 200);
    assert_eq!(v["clock"]["frozen"], true);
}

#[test]
fn fob_routes_create_read_drift_battery_remove() {
    let (f, api) = setup();
    let v = ok(&api, &get("/api/fobs/GAHT00000002"), 200);
    assert_eq!(v["fob"]["model"], "gaht");
    assert_eq!(v["fob"]["battery"], "good");

    let v = ok(
        &api,
        &post(
            "/api/fobs/GAHT00000002/drift",
            r#"{"offset":"+47s","ppm":20}"#,
        ),
        200,
    );
    assert_eq!(v["fob"]["offset_ms"], 47_000);
    assert_eq!(v["fob"]["ppm"], 20.0);
    // A fob 47 s fast shows the code of its own clock.
    let v = ok(&api, &post("/api/fobs/GAHT00000002/press", ""), 200);
    assert_eq!(v["device_time"], "2026-01-01T00:00:47.000Z");
    assert_eq!(v["code"], expected_code(&f, "GAHT00000002", T0 + 47));
    // The code changes when the device steps, before the display blanks.
    assert_eq!(v["shown_until"], "2026-01-01T00:00:13.000Z");

    let v = ok(&api, &post("/api/fobs/GAHT00000002/battery/pull", ""), 200);
    assert_eq!(v["fob"]["battery"], "dead");
    assert_eq!(v["fob"]["device"], Value::Null);
    let v = ok(&api, &post("/api/fobs/GAHT00000002/press", ""), 200);
    assert_eq!(v["code"], Value::Null);
    assert_eq!(v["device_time"], Value::Null);
    let v = ok(&api, &post("/api/fobs/GAHT00000002/battery/swap", ""), 200);
    assert_eq!(v["fob"]["battery"], "good");
    assert_eq!(v["fob"]["device"], "2000-01-01T00:00:00.000Z");

    let v = ok(
        &api,
        &post("/api/fobs", r#"{"model":"c200","offset":"-2m"}"#),
        201,
    );
    assert_eq!(v["fob"]["serial"], "C200000000001");
    assert_eq!(v["fob"]["offset_ms"], -120_000);
    let v = ok(
        &api,
        &post("/api/fobs", r#"{"model":"gaht","serial":"GAHT00000042"}"#),
        201,
    );
    assert_eq!(v["fob"]["serial"], "GAHT00000042");
    let v = ok(&api, &post("/api/fobs/GAHT00000042/press", ""), 200);
    assert!(v["code"].as_str().is_some_and(|c| c.len() == 6));
    let v = ok(&api, &get("/api/fobs"), 200);
    let serials: Vec<_> = v["fobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["serial"].clone())
        .collect();
    assert_eq!(
        serials,
        [
            "GAHT00000001",
            "GAHT00000002",
            "C200000000001",
            "GAHT00000042"
        ]
    );

    let del = HttpRequest::new("DELETE", "/api/fobs/GAHT00000001")
        .header("host", ADDR)
        .header("content-type", "application/json");
    let v = ok(&api, &del, 200);
    assert_eq!(v["fob"]["serial"], "GAHT00000001");
    err(&api.handle(&del), 404, "no_such_fob");
    err(
        &api.handle(&get("/api/fobs/GAHT00000001")),
        404,
        "no_such_fob",
    );
    assert_eq!(
        ok(&api, &get("/api/fobs"), 200)["fobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let v = ok(&api, &get("/api/models"), 200);
    assert!(
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "c100")
    );
}

#[test]
fn unknown_fob_is_404_json_on_every_fob_route() {
    let (_f, api) = setup();
    for req in [
        get("/api/fobs/NOPE00000000"),
        get("/api/fobs/NOPE00000000/display"),
        post("/api/fobs/NOPE00000000/press", ""),
        post("/api/fobs/NOPE00000000/drift", r#"{"ppm":1}"#),
        post("/api/fobs/NOPE00000000/battery/pull", ""),
        post("/api/fobs/NOPE00000000/battery/swap", ""),
        HttpRequest::new("DELETE", "/api/fobs/NOPE00000000")
            .header("host", ADDR)
            .header("content-type", "application/json"),
    ] {
        let v = err(&api.handle(&req), 404, "no_such_fob");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("NOPE00000000")
        );
    }
}

#[test]
fn malformed_bodies_are_400_naming_the_field() {
    let (_f, api) = setup();
    for (path, body, field) in [
        ("/api/clock/advance", r#"{"by":30}"#, Some("by")),
        ("/api/clock/advance", r#"{}"#, Some("by")),
        (
            "/api/clock/advance",
            r#"{"by":"30s","extra":1}"#,
            Some("extra"),
        ),
        ("/api/clock/advance", r#"{"by":"soon"}"#, Some("by")),
        ("/api/clock/set", r#"{"time":"yesterday"}"#, Some("time")),
        ("/api/clock/set", r#"{"time":["@1"]}"#, Some("time")),
        ("/api/clock/freeze", r#"{"now":true}"#, Some("now")),
        ("/api/fobs", r#"{"serial":"GAHT00000009"}"#, Some("model")),
        ("/api/fobs", r#"{"model":"zzz"}"#, Some("model")),
        (
            "/api/fobs",
            r#"{"model":"gaht","serial":"x"}"#,
            Some("serial"),
        ),
        ("/api/fobs", r#"{"model":"gaht","ppm":"20"}"#, Some("ppm")),
        (
            "/api/fobs",
            r#"{"model":"gaht","secret":"JBSWY3DP"}"#,
            Some("secret"),
        ),
        (
            "/api/fobs/GAHT00000001/drift",
            r#"{"offset":47}"#,
            Some("offset"),
        ),
        (
            "/api/fobs/GAHT00000001/drift",
            r#"{"jitter":"-1s"}"#,
            Some("jitter"),
        ),
        (
            "/api/fobs/GAHT00000001/press",
            r#"{"twice":true}"#,
            Some("twice"),
        ),
        ("/api/clock/advance", r#"{"by":"#, None),
        ("/api/clock/advance", r#"["30s"]"#, None),
        ("/api/clock/advance", "not json", None),
        (
            "/api/fobs/GAHT00000001/drift",
            r#"{"ppm":1e9}"#,
            Some("ppm"),
        ),
        ("/api/fobs", r#"{"model":"gaht","ppm":-1e9}"#, Some("ppm")),
    ] {
        let r = api.handle(&post(path, body));
        assert_eq!(
            r.status,
            400,
            "{path} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json_body();
        assert!(
            matches!(
                v["error"]["code"].as_str(),
                Some("bad_request" | "bad_value")
            ),
            "{v}"
        );
        assert_eq!(v["error"]["field"].as_str(), field, "{path} {body}: {v}");
    }
}

#[test]
fn other_refusals_have_their_status() {
    let (_f, api) = setup();
    // Exists.
    let r = api.handle(&post(
        "/api/fobs",
        r#"{"model":"gaht","serial":"GAHT00000001"}"#,
    ));
    assert_eq!(err(&r, 409, "exists")["error"]["field"], "serial");
    // The system clock cannot be moved.
    let f = fleet(TrueClock::System);
    let sys = api_of(&f);
    err(
        &sys.handle(&post("/api/clock/freeze", "")),
        409,
        "system_clock",
    );
    err(
        &sys.handle(&post("/api/clock/advance", r#"{"by":"1s"}"#)),
        409,
        "system_clock",
    );
    // Routes and methods.
    err(&api.handle(&get("/api/nothing")), 404, "not_found");
    err(
        &api.handle(&post("/api/fobs/GAHT00000001/battery/eat", "")),
        404,
        "not_found",
    );
    let r = api.handle(&get("/api/fobs/GAHT00000001/press"));
    err(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = api.handle(&post("/api/clock", ""));
    err(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    // Too long.
    let big = format!(r#"{{"by":"{}"}}"#, "1".repeat(70_000));
    err(
        &api.handle(&post("/api/clock/advance", &big)),
        413,
        "too_long",
    );
}

#[test]
fn csrf_defence_json_content_type_same_origin_and_host() {
    let (f, api) = setup();
    let press = "/api/fobs/GAHT00000001/press";
    // A form post (no JSON content type) is refused, whatever the origin.
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut r = HttpRequest::new("POST", press).header("host", ADDR);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        err(&api.handle(&r), 415, "unsupported_media_type");
    }
    // Another origin is refused even with JSON (a preflight would be needed
    // anyway; this is the second line).
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:9999"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = post(press, "").header(name, value);
        err(&api.handle(&r), 403, "cross_origin");
    }
    // DNS rebinding: a page of another name resolving to loopback.
    let r = HttpRequest::new("GET", "/api/fobs").header("host", "evil.example:8080");
    err(&api.handle(&r), 403, "forbidden_host");
    err(
        &api.handle(&HttpRequest::new("GET", "/")),
        403,
        "forbidden_host",
    );
    // None of the refused presses pressed.
    assert_eq!(f.with_fob(0, |fob, _| fob.presses()), Some(0));
    // The page's own requests pass: same origin, JSON; and curl's (no Origin).
    for h in [ADDR, "localhost:8080", "127.0.0.1:8080"] {
        let r = HttpRequest::new("POST", press)
            .header("host", h)
            .header("origin", &format!("http://{h}"))
            .header("sec-fetch-site", "same-origin")
            .json("");
        ok(&api, &r, 200);
    }
    ok(&api, &post(press, ""), 200);
    assert_eq!(f.with_fob(0, |fob, _| fob.presses()), Some(4));
    // Not bound to loopback: any Host, the other checks stay.
    let open = ControlApi::new(Arc::clone(f.clock()), Arc::clone(&f) as Arc<dyn Fobs>)
        .bound_to("0.0.0.0:8080".parse().unwrap());
    ok(
        &open,
        &HttpRequest::new("GET", "/api/fobs").header("host", "fobs.lan:8080"),
        200,
    );
    err(
        &open.handle(&HttpRequest::new("POST", press).header("host", "fobs.lan:8080")),
        415,
        "unsupported_media_type",
    );
}

#[test]
fn the_panel_is_embedded_labelled_and_locked_down() {
    let (_f, api) = setup();
    let r = api.handle(&get("/"));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let html = String::from_utf8(r.body).unwrap();
    // Nothing fetched from elsewhere.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external reference"
    );
    assert!(html.contains(r#"src="/panel.js""#) && html.contains(r#"href="/panel.css""#));
    // Every input has a label; every button a text or an aria-label.
    for id in [
        "advance-by",
        "set-time",
        "create-model",
        "create-serial",
        "create-offset",
    ] {
        assert!(
            html.contains(&format!(r#"for="{id}""#)),
            "no label for {id}"
        );
    }
    let js = api.handle(&get("/panel.js"));
    assert_eq!(js.status, 200);
    let js = String::from_utf8(js.body).unwrap();
    assert!(js.contains("\"Content-Type\"] = \"application/json\""));
    assert!(!js.contains("innerHTML"), "data must go in as text");
    assert!(!js.contains("http://") && !js.contains("https://"));
    for needle in [
        "Press the button of ",
        "Pull the battery of ",
        "Put a fresh battery in ",
        "Remove ",
    ] {
        assert!(js.contains(needle), "{needle}");
    }
    let css = api.handle(&get("/panel.css"));
    assert_eq!(css.status, 200);
    assert!(!String::from_utf8(css.body).unwrap().contains("url("));
}

#[test]
fn no_answer_ever_holds_a_secret() {
    let (f, api) = setup();
    ok(&api, &post("/api/fobs", r#"{"model":"d8"}"#), 201);
    let mut bodies = Vec::new();
    for req in [
        get("/api/fobs"),
        get("/api/fobs/GAHT00000001"),
        get("/api/fobs/OTPD800000001"),
        post("/api/fobs/GAHT00000001/press", ""),
        get("/api/fobs/GAHT00000001/display"),
        get("/api/clock"),
        get("/api/models"),
        get("/"),
        get("/panel.js"),
    ] {
        bodies.push(String::from_utf8_lossy(&api.handle(&req).body).to_lowercase());
    }
    let mut secrets: Vec<_> = f.seed_records().into_iter().map(|r| r.secret).collect();
    secrets.push(f.with_fob(2, |fob, _| fob.seed_record().secret).unwrap());
    for s in secrets {
        let hex = hex::encode(s.expose());
        let b32 = s.to_base32().to_lowercase();
        for b in &bodies {
            assert!(
                !b.contains(&hex) && !b.contains(&b32[..16]),
                "a secret leaked"
            );
        }
    }
}

#[test]
fn junk_never_panics() {
    let (_f, api) = setup();
    let methods = [
        "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "", "G\u{0}T",
    ];
    let paths = [
        "",
        "/",
        "//",
        "/api",
        "/api/",
        "/api/fobs/",
        "/api/fobs//press",
        "/api/fobs/%00/press",
        "/api/fobs/GAHT00000001/battery",
        "/api/fobs/GAHT00000001/battery/pull/x",
        "/api/clock/advance/",
        "/../etc/passwd",
        "/api/fobs/\u{202e}",
        "/panel.js/",
    ];
    let bodies: [&[u8]; 7] = [
        b"",
        b"{}",
        b"null",
        b"\xff\xfe",
        b"{\"by\":\"1s\"}",
        b"[[[[[[[[[[",
        b"{\"model\":{\"a\":1}}",
    ];
    let mut n = 0;
    for m in methods {
        for p in paths {
            for b in bodies {
                let mut req = HttpRequest::new(m, p)
                    .header("host", ADDR)
                    .header("content-type", "application/json");
                req.body = b.to_vec();
                let r = api.handle(&req);
                assert!((200..600).contains(&r.status));
                if r.status >= 400 {
                    assert!(r.json_body()["error"]["code"].is_string(), "{m} {p}");
                }
                n += 1;
            }
        }
    }
    assert_eq!(n, methods.len() * paths.len() * bodies.len());
}

#[test]
fn over_a_real_socket() {
    let f = fleet(TrueClock::manual(Timestamp::from_secs(T0)));
    let f2 = Arc::clone(&f);
    let server = Loopback::start(move |addr| {
        ControlApi::new(Arc::clone(f2.clock()), f2 as Arc<dyn Fobs>).bound_to(addr)
    })
    .unwrap();
    let mut c = PanelClient::connect(server.addr()).unwrap();
    // Keep-alive: many requests on one connection.
    for _ in 0..3 {
        let a = c
            .request("POST", "/api/fobs/GAHT00000001/press", Some(""))
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["code"], expected_code(&f, "GAHT00000001", T0));
    }
    let a = c.request("GET", "/api/fobs/NOPE00000000", None).unwrap();
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "no_such_fob");
    let a = c
        .request("POST", "/api/clock/advance", Some(r#"{"by":"#))
        .unwrap();
    assert_eq!(a.status, 400);
    let a = c.request("POST", "/api/clock/advance", None).unwrap();
    assert_eq!(a.status, 415);
    let a = c.request("GET", "/", None).unwrap();
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("fob panel"));
    // A body over the limit is refused, the server lives on.
    let mut c2 = PanelClient::connect(server.addr()).unwrap();
    let big = format!(r#"{{"by":"{}"}}"#, "1".repeat(100_000));
    let a = c2
        .request("POST", "/api/clock/advance", Some(&big))
        .unwrap();
    assert_eq!(a.status, 413);
    // Garbage on a third connection does not take the server down.
    let mut c3 = PanelClient::connect(server.addr()).unwrap();
    assert!(
        c3.send_raw(b"\x00\x01 garbage\r\n\r\n")
            .map_or(true, |a| a.status == 400)
    );
    let a = c.request("GET", "/api/clock", None).unwrap();
    assert_eq!(a.status, 200);
}
