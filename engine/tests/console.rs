#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly
//! The console (docs/console.md) driven as a browser would: a cookie jar,
//! the CSRF token scraped from each form, redirects followed. Most tests
//! call `Console::handle` directly (the clock is a SimClock); one goes
//! over HTTP through `Routes` on a loopback port.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use fobsim_core::{Clock, Principal, SimClock};
use fobsim_engine::Engine;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::console::{Console, ConsoleConfig, ConsoleRequest, ConsoleResponse};
use fobsim_engine::testing::{self, TestToken};

const SEED_POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");
const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

struct Fx {
    console: Arc<Console>,
    engine: Arc<Engine>,
    clock: Arc<SimClock>,
    fobs: Vec<TestToken>,
}

/// alice and bob with the seed's policy, carol an administrator, `n` fobs.
fn fx(n: u64) -> Fx {
    let t = testing::T0.add_millis(10_000);
    let (engine, fobs) = testing::in_memory_with_fobs(n, t);
    engine.create_user("carol", testing::USER_PASSWORD).unwrap();
    let engine = Arc::new(engine);
    let seed = Arc::new(Policy::parse(SEED_POLICY).unwrap());
    let admin = Arc::new(Policy::parse(ADMIN_POLICY).unwrap());
    let policies = HashMap::from([
        ("alice".to_string(), vec![Arc::clone(&seed)]),
        ("bob".to_string(), vec![seed]),
        ("carol".to_string(), vec![admin]),
    ]);
    let clock = Arc::new(SimClock::new(t));
    let console = Console::new(
        Arc::clone(&engine),
        policies,
        vec!["alice".into(), "bob".into(), "carol".into()],
        Arc::clone(&clock) as Arc<dyn Clock>,
        ConsoleConfig::default(),
    )
    .unwrap();
    Fx {
        console: Arc::new(console),
        engine,
        clock,
        fobs,
    }
}

#[derive(Debug)]
struct Page {
    status: u16,
    body: String,
}

impl Page {
    fn attr(&self, marker: &str) -> Option<String> {
        let i = self.body.find(marker)? + marker.len();
        let j = self.body[i..].find('"')?;
        Some(self.body[i..i + j].to_string())
    }
    fn page(&self) -> String {
        self.attr("<body data-page=\"").unwrap_or_default()
    }
    fn error(&self) -> Option<String> {
        self.attr("id=\"error\" data-code=\"")
    }
    fn notice(&self) -> Option<String> {
        let i = self.body.find("id=\"notice\">")? + "id=\"notice\">".len();
        let j = self.body[i..].find("</div>")?;
        Some(self.body[i..i + j].to_string())
    }
    fn has(&self, s: &str) -> bool {
        self.body.contains(s)
    }
}

/// A browser: one cookie, the last CSRF token seen, redirects followed.
struct Browser<'a> {
    c: &'a Console,
    cookie: Option<String>,
    csrf: Option<String>,
    pages: Vec<String>,
}

impl<'a> Browser<'a> {
    fn new(c: &'a Console) -> Self {
        Browser {
            c,
            cookie: None,
            csrf: None,
            pages: Vec::new(),
        }
    }

    fn raw(&mut self, method: &str, url: &str, ct: Option<&str>, body: &[u8]) -> ConsoleResponse {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let cookie = self.cookie.as_ref().map(|c| format!("fobsim_console={c}"));
        let r = self.c.handle(&ConsoleRequest {
            method,
            path,
            query,
            cookie: cookie.as_deref(),
            content_type: ct,
            body,
        });
        if let Some(sc) = &r.set_cookie {
            assert!(
                sc.contains("HttpOnly")
                    && sc.contains("SameSite=Strict")
                    && sc.contains("Path=/console"),
                "{sc}"
            );
            let v = sc.split(';').next().unwrap().split_once('=').unwrap().1;
            self.cookie = Some(v.to_string());
        }
        r
    }

    fn follow(&mut self, mut r: ConsoleResponse) -> Page {
        for _ in 0..5 {
            let Some(loc) = r.location.clone() else { break };
            assert_eq!(r.status, 303);
            r = self.raw("GET", &loc, None, b"");
        }
        self.pages.push(r.body.clone());
        let p = Page {
            status: r.status,
            body: r.body,
        };
        if let Some(t) = p.attr("name=\"csrf_token\" value=\"") {
            self.csrf = Some(t);
        }
        p
    }

    fn get(&mut self, url: &str) -> Page {
        let r = self.raw("GET", url, None, b"");
        self.follow(r)
    }

    /// POST a form with this session's CSRF token (GET `url` first if
    /// none is known). Returns the POST's status and the final page.
    fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> (u16, Page) {
        if self.csrf.is_none() {
            self.get(url);
        }
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone().unwrap();
        all.push(("csrf_token", &csrf));
        let body = serde_urlencoded::to_string(&all).unwrap();
        let r = self.raw(
            "POST",
            url,
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        );
        let status = r.status;
        (status, self.follow(r))
    }

    fn sign_in(&mut self, user: &str) -> Page {
        self.get("/console/signin");
        let (s, p) = self.post(
            "/console/signin",
            &[
                ("account", testing::ACCOUNT_ID),
                ("username", user),
                ("password", testing::USER_PASSWORD),
            ],
        );
        assert_eq!(s, 303, "{}", p.body);
        p
    }
}

fn assign(b: &mut Browser<'_>, serial: &str, c1: &str, c2: &str, user: &str) -> (u16, Page) {
    let q = if user.is_empty() {
        "/console/mfa/assign?device_type=hardware".to_string()
    } else {
        format!("/console/mfa/assign?device_type=hardware&user={user}")
    };
    let form = b.get(&q);
    assert_eq!(form.page(), "mfa-assign");
    assert!(form.has("id=\"assign-mfa-form\"") && form.has("id=\"sync-warning\""));
    b.post(
        "/console/mfa/assign",
        &[
            ("serial", serial),
            ("code1", c1),
            ("code2", c2),
            ("user", user),
        ],
    )
}

#[test]
fn own_device_through_the_wizard_then_sign_in_with_it() {
    let mut fx = fx(1);
    let serial = fx.fobs[0].serial().as_str().to_string();
    let mut b = Browser::new(&fx.console);
    assert_eq!(b.get("/console/").page(), "signin");
    let home = b.sign_in("alice");
    assert_eq!(home.page(), "home");
    let creds = b.get("/console/security-credentials");
    assert!(creds.has("id=\"no-mfa-devices\""));
    let choose = b.get("/console/mfa/assign");
    assert!(choose.has("id=\"mfa-type-form\"") && choose.has("id=\"device-type-hardware\""));
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut b, &serial, &c1, &c2, "");
    assert_eq!(s, 303, "{}", p.body);
    assert_eq!(p.page(), "security-credentials");
    assert!(p.notice().unwrap().contains("is assigned"));
    assert!(p.has(&format!("<tr data-serial=\"{serial}\">")));
    assert!(p.has("<td class=\"status\">Assigned</td>"));
    // Sign out, sign in: the code step.
    let (s, p) = b.post("/console/signout", &[]);
    assert_eq!((s, p.page()), (303, "signin".to_string()));
    assert_eq!(p.notice().as_deref(), Some("You have signed out."));
    let p = b.sign_in("alice");
    assert_eq!(p.page(), "signin-mfa");
    assert!(
        !p.has("alt-factors"),
        "IAM users have no alternative factors"
    );
    fx.clock.advance_millis(30_000);
    let code = testing::press(&mut fx.fobs[0], fx.clock.now());
    let (s, p) = b.post("/console/signin/mfa", &[("code", &code)]);
    assert_eq!((s, p.page()), (303, "home".to_string()), "{}", p.body);
    // The code is used up: a second browser cannot sign in with it.
    let mut b2 = Browser::new(&fx.console);
    b2.sign_in("alice");
    let (s, p) = b2.post("/console/signin/mfa", &[("code", &code)]);
    assert_eq!((s, p.error().as_deref()), (403, Some("AccessDenied")));
    assert_eq!(p.page(), "signin-mfa");
}

#[test]
fn late_second_code_assigns_out_of_sync_then_resync_from_the_console() {
    let mut fx = fx(1);
    let serial = fx.fobs[0].serial().as_str().to_string();
    let mut b = Browser::new(&fx.console);
    b.sign_in("alice");
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2.add_millis(10 * 60_000)); // ten minutes late
    let (s, p) = assign(&mut b, &serial, &c1, &c2, "");
    assert_eq!(s, 303);
    let notice = p.notice().unwrap();
    assert!(
        notice.contains("is assigned")
            && notice.contains("out of sync")
            && notice.contains("resync")
    );
    assert_eq!(
        fx.engine.token_state(&serial).unwrap().assigned_to,
        Some(Principal::user("alice"))
    );
    // Sign-in refused: the device is out of sync.
    let mut other = Browser::new(&fx.console);
    other.sign_in("alice");
    fx.clock.advance_millis(40_000);
    let code = testing::press(&mut fx.fobs[0], fx.clock.now());
    let (s, _) = other.post("/console/signin/mfa", &[("code", &code)]);
    assert_eq!(s, 403);
    // Resync from the console (the first browser is still signed in).
    fx.clock.advance_millis(60_000);
    let form = b.get(&format!("/console/mfa/resync?serial={serial}"));
    assert_eq!(form.page(), "mfa-resync");
    assert!(form.has(&format!("name=\"serial\" value=\"{serial}\"")));
    let (r1, r2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = b.post(
        "/console/mfa/resync",
        &[
            ("serial", &serial),
            ("code1", &r1),
            ("code2", &r2),
            ("user", ""),
        ],
    );
    assert_eq!(s, 303, "{}", p.body);
    assert!(p.notice().unwrap().contains("resynchronized"));
    fx.clock.advance_millis(30_000);
    let code = testing::press(&mut fx.fobs[0], fx.clock.now());
    let (s, p) = other.post("/console/signin/mfa", &[("code", &code)]);
    assert_eq!((s, p.page()), (303, "home".to_string()), "{}", p.body);
}

#[test]
fn refusals_in_the_console_words() {
    let mut fx = fx(2);
    let s0 = fx.fobs[0].serial().as_str().to_string();
    let s1 = fx.fobs[1].serial().as_str().to_string();
    let mut alice = Browser::new(&fx.console);
    alice.sign_in("alice");
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    assert_eq!(assign(&mut alice, &s0, &c1, &c2, "").0, 303);
    // Wrong codes.
    let mut bob = Browser::new(&fx.console);
    bob.sign_in("bob");
    let (s, p) = assign(&mut bob, &s1, "123456", "654321", "");
    assert_eq!(
        (s, p.error().as_deref()),
        (403, Some("InvalidAuthenticationCode"))
    );
    assert!(
        p.has(&format!("name=\"serial\" value=\"{s1}\"")),
        "serial kept"
    );
    // Device in use by another user.
    fx.clock.advance_millis(60_000);
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut bob, &s0, &c1, &c2, "");
    assert_eq!(
        (s, p.error().as_deref()),
        (409, Some("EntityAlreadyExists"))
    );
    assert!(p.has("MFA Device is already in use."));
    // One device per user.
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[1], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut alice, &s1, &c1, &c2, "");
    assert_eq!((s, p.error().as_deref()), (409, Some("LimitExceeded")));
    // Unknown serial.
    let (s, p) = assign(&mut bob, "GAHT99999999", "123456", "654321", "");
    assert_eq!((s, p.error().as_deref()), (404, Some("NoSuchEntity")));
    // Malformed code.
    let (s, p) = assign(&mut bob, &s1, "12x", "654321", "");
    assert_eq!((s, p.error().as_deref()), (400, Some("ValidationError")));
    // Removing without MFA: the seed's policy denies it (explicit deny).
    let (s, p) = alice.post("/console/mfa/remove", &[("serial", &s0), ("user", "")]);
    assert_eq!((s, p.error().as_deref()), (403, Some("AccessDenied")));
    assert!(p.has("explicit deny"));
}

#[test]
fn an_administrator_manages_another_users_device_as_the_policy_allows() {
    let mut fx = fx(1);
    let serial = fx.fobs[0].serial().as_str().to_string();
    let mut carol = Browser::new(&fx.console);
    carol.sign_in("carol");
    let users = carol.get("/console/users");
    assert_eq!(users.page(), "users");
    assert!(users.has("<tr data-user=\"bob\">"));
    let bobs = carol.get("/console/users/bob");
    assert_eq!((bobs.status, bobs.page()), (200, "user".to_string()));
    assert!(bobs.has("href=\"/console/mfa/assign?user=bob\""));
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut carol, &serial, &c1, &c2, "bob");
    assert_eq!((s, p.page()), (303, "user".to_string()), "{}", p.body);
    assert!(p.has(&format!("<tr data-serial=\"{serial}\">")));
    assert_eq!(
        fx.engine.token_state(&serial).unwrap().assigned_to,
        Some(Principal::user("bob"))
    );
    // alice (the seed's policy: her own user only) may not.
    let mut alice = Browser::new(&fx.console);
    alice.sign_in("alice");
    let p = alice.get("/console/users/bob");
    assert_eq!(
        (p.status, p.error().as_deref()),
        (403, Some("AccessDenied"))
    );
    let p = alice.get("/console/users");
    assert_eq!(
        (p.status, p.error().as_deref()),
        (403, Some("AccessDenied"))
    );
    let (s, p) = alice.post(
        "/console/mfa/remove",
        &[("serial", &serial), ("user", "bob")],
    );
    assert_eq!((s, p.error().as_deref()), (403, Some("AccessDenied")));
    assert!(p.has("is not authorized to perform: iam:DeactivateMFADevice"));
    // carol removes it.
    let (s, p) = carol.post(
        "/console/mfa/remove",
        &[("serial", &serial), ("user", "bob")],
    );
    assert_eq!(s, 303, "{}", p.body);
    assert!(p.notice().unwrap().contains("is removed"));
    assert!(p.has("id=\"no-mfa-devices\""));
}

fn root_password_step(b: &mut Browser<'_>) -> Page {
    b.get("/console/signin/root");
    let (s, p) = b.post(
        "/console/signin/root",
        &[
            ("email", testing::ROOT_EMAIL),
            ("password", testing::ROOT_PASSWORD),
        ],
    );
    assert_eq!(s, 303, "{}", p.body);
    p
}

#[test]
fn root_assigns_in_the_console_and_rotates() {
    let mut fx = fx(2);
    let s0 = fx.fobs[0].serial().as_str().to_string();
    let s1 = fx.fobs[1].serial().as_str().to_string();
    let mut b = Browser::new(&fx.console);
    assert_eq!(root_password_step(&mut b).page(), "home");
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut b, &s0, &c1, &c2, "");
    assert_eq!(s, 303, "{}", p.body);
    assert_eq!(
        fx.engine.token_state(&s0).unwrap().assigned_to,
        Some(Principal::Root)
    );
    // Rotate: remove, then assign the new device.
    let (s, _) = b.post("/console/mfa/remove", &[("serial", &s0), ("user", "")]);
    assert_eq!(s, 303);
    fx.clock.advance_millis(60_000);
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[1], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut b, &s1, &c1, &c2, "");
    assert_eq!(s, 303, "{}", p.body);
    assert!(
        p.has(&format!("<tr data-serial=\"{s1}\">"))
            && !p.has(&format!("<tr data-serial=\"{s0}\">"))
    );
    // The next root sign-in asks for a code from the new device.
    let mut b2 = Browser::new(&fx.console);
    let p = root_password_step(&mut b2);
    assert_eq!(p.page(), "signin-mfa");
    assert!(p.has("id=\"alt-factors\""));
    fx.clock.advance_millis(30_000);
    let code = testing::press(&mut fx.fobs[1], fx.clock.now());
    let (s, p) = b2.post("/console/signin/mfa", &[("code", &code)]);
    assert_eq!((s, p.page()), (303, "home".to_string()));
}

#[test]
fn root_lost_device_recovery_end_to_end() {
    let mut fx = fx(2);
    let s0 = fx.fobs[0].serial().as_str().to_string();
    let s1 = fx.fobs[1].serial().as_str().to_string();
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.engine
        .enable_mfa_device(
            t2,
            fobsim_core::Channel::Console,
            &Principal::Root,
            &s0,
            &c1,
            &c2,
        )
        .unwrap();
    fx.clock.set(t2.add_millis(60_000));
    // Recovery pages need the root password first.
    let mut stranger = Browser::new(&fx.console);
    let p = stranger.get("/console/recovery");
    assert_eq!(p.error().as_deref(), Some("NotSignedIn"));
    // The device is lost: password, then alternative factors.
    let mut b = Browser::new(&fx.console);
    let p = root_password_step(&mut b);
    assert_eq!(p.page(), "signin-mfa");
    let p = b.get("/console/recovery");
    assert_eq!(p.page(), "recovery");
    assert!(p.has("r***@example.com") && !p.has(testing::ROOT_EMAIL));
    let (s, p) = b.post("/console/recovery", &[]);
    assert_eq!((s, p.page()), (303, "recovery-email".to_string()));
    // The mail catcher and the phone.
    let mut dev = Browser::new(&fx.console);
    let outbox = dev.get("/console/outbox");
    assert!(outbox.has("id=\"dev-banner\"") && outbox.has("Development page"));
    let email_code = outbox
        .attr("<li data-channel=\"email\">")
        .map(|_| {
            let i = outbox.body.find("data-channel=\"email\"").unwrap();
            let rest = &outbox.body[i..];
            let j = rest.find("<span class=\"code\">").unwrap() + "<span class=\"code\">".len();
            rest[j..j + rest[j..].find('<').unwrap()].to_string()
        })
        .unwrap();
    let phone = dev.get("/console/phone");
    assert!(phone.has("<ul id=\"phone\"") && !phone.has("data-channel=\"email\""));
    let i = phone.body.find("<span class=\"code\">").unwrap() + "<span class=\"code\">".len();
    let phone_code = phone.body[i..i + phone.body[i..].find('<').unwrap()].to_string();
    assert_eq!((email_code.clone(), phone_code.clone()), {
        let o = fx.engine.outbox();
        (o[0].code.clone(), o[1].code.clone())
    });
    let (s, p) = b.post("/console/recovery/email", &[("email_code", &email_code)]);
    assert_eq!((s, p.page()), (303, "recovery-phone".to_string()));
    let (s, p) = b.post("/console/recovery/phone", &[("phone_code", &phone_code)]);
    assert_eq!((s, p.page()), (303, "home".to_string()), "{}", p.body);
    assert!(p.notice().unwrap().contains("once without MFA"));
    // Only once: another sign-in asks for a code.
    let mut again = Browser::new(&fx.console);
    assert_eq!(root_password_step(&mut again).page(), "signin-mfa");
    // Replace the device.
    let (s, _) = b.post("/console/mfa/remove", &[("serial", &s0), ("user", "")]);
    assert_eq!(s, 303);
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[1], fx.clock.now());
    fx.clock.set(t2);
    let (s, p) = assign(&mut b, &s1, &c1, &c2, "");
    assert_eq!(s, 303, "{}", p.body);
    assert_eq!(
        fx.engine.token_state(&s1).unwrap().assigned_to,
        Some(Principal::Root)
    );
    // A wrong phone code cancels a verification.
    let mut c = Browser::new(&fx.console);
    root_password_step(&mut c);
    c.post("/console/recovery", &[]);
    c.post("/console/recovery/email", &[("email_code", "00000000")]);
    let (s, p) = c.post("/console/recovery/phone", &[("phone_code", "00000000")]);
    assert_eq!(
        (s, p.page(), p.error().as_deref()),
        (403, "recovery".to_string(), Some("AccessDenied"))
    );
}

#[test]
fn csrf_is_required_on_every_post() {
    let fx = fx(1);
    let mut b = Browser::new(&fx.console);
    // No session at all.
    let body = format!(
        "account={}&username=alice&password={}",
        testing::ACCOUNT_ID,
        testing::USER_PASSWORD
    );
    let r = b.raw(
        "POST",
        "/console/signin",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("data-code=\"InvalidCsrfToken\""));
    // A session, no token; then a wrong one.
    b.get("/console/signin");
    let r = b.raw(
        "POST",
        "/console/signin",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    let wrong = format!("{body}&csrf_token={}", "0".repeat(64));
    let r = b.raw(
        "POST",
        "/console/signin",
        Some("application/x-www-form-urlencoded"),
        wrong.as_bytes(),
    );
    assert_eq!(r.status, 403);
    // Signed in: sign-out without the token does nothing.
    b.sign_in("alice");
    let r = b.raw(
        "POST",
        "/console/signout",
        Some("application/x-www-form-urlencoded"),
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(b.get("/console/home").page(), "home");
}

#[test]
fn malformed_forms_get_400_and_change_nothing() {
    let fx = fx(1);
    let mut b = Browser::new(&fx.console);
    b.sign_in("alice");
    for (ct, body) in [
        (
            Some("application/x-www-form-urlencoded"),
            &b"serial=%FF&code1"[..],
        ),
        (
            Some("application/x-www-form-urlencoded"),
            &[b's', b'=', 0xfe, 0xff][..],
        ),
        (Some("application/json"), &b"{\"serial\":1}"[..]),
        (None, &b"a=1"[..]),
    ] {
        let r = b.raw("POST", "/console/mfa/assign", ct, body);
        assert_eq!(r.status, 400, "{body:?}");
        assert!(r.body.contains("data-code=\"MalformedForm\""));
        // docs/console.md: the error page, not the form it came from.
        assert!(r.body.contains("<body data-page=\"error\""), "{}", r.body);
    }
    let r = b.raw("PUT", "/console/home", None, b"");
    assert_eq!(r.status, 405);
    assert!(r.body.contains("<body data-page=\"error\""), "{}", r.body);
    assert!(
        r.body.contains("data-code=\"MethodNotAllowed\""),
        "{}",
        r.body
    );
    let p = b.get("/console/nope");
    assert_eq!((p.status, p.error().as_deref()), (404, Some("NotFound")));
    assert_eq!(p.page(), "error");
    assert!(
        p.body.contains("id=\"message-link\" href=\"/console/\""),
        "{}",
        p.body
    );
    assert_eq!(b.get("/console/home").page(), "home");
}

#[test]
fn wrong_credentials_are_refused_alike_and_output_is_escaped() {
    let fx = fx(1);
    let mut b = Browser::new(&fx.console);
    b.get("/console/signin");
    let evil = "<script>alert(1)</script>";
    for (account, user, pw) in [
        (testing::ACCOUNT_ID, "alice", "wrong"),
        (testing::ACCOUNT_ID, evil, testing::USER_PASSWORD),
        ("999999999999", "alice", testing::USER_PASSWORD),
        (evil, "alice", testing::USER_PASSWORD),
    ] {
        let (s, p) = b.post(
            "/console/signin",
            &[("account", account), ("username", user), ("password", pw)],
        );
        assert_eq!(
            (s, p.error().as_deref()),
            (403, Some("AccessDenied")),
            "{user}"
        );
        assert!(p.has("Your authentication information is incorrect."));
        assert!(!p.has("<script>"), "unescaped");
        assert!(!p.has(pw) || pw == "wrong", "the password is not echoed");
    }
    assert!(
        b.pages
            .iter()
            .any(|p| p.contains("&lt;script&gt;") || p.contains("&#60;script&#62;"))
    );
    // The alias works as the account.
    let (s, p) = b.post(
        "/console/signin",
        &[
            ("account", testing::ALIAS),
            ("username", "alice"),
            ("password", testing::USER_PASSWORD),
        ],
    );
    assert_eq!((s, p.page()), (303, "home".to_string()));
    // A user name in a path is escaped too.
    let p = b.get("/console/users/%3Cscript%3E");
    assert!(!p.has("<script>"));
}

#[test]
fn no_secret_on_any_page() {
    let mut fx = fx(1);
    let serial = fx.fobs[0].serial().as_str().to_string();
    let mut b = Browser::new(&fx.console);
    b.sign_in("alice");
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], fx.clock.now());
    fx.clock.set(t2);
    assign(&mut b, &serial, &c1, &c2, "");
    for url in [
        "/console/home",
        "/console/security-credentials",
        "/console/mfa/assign?device_type=hardware",
        "/console/outbox",
        "/console/phone",
        "/console/style.css",
    ] {
        b.get(url);
    }
    let mut root = Browser::new(&fx.console);
    root_password_step(&mut root);
    let secret_hex = hex::encode(fx.fobs[0].seed_record().secret.expose());
    let cookie = b.cookie.clone().unwrap();
    for page in b.pages.iter().chain(root.pages.iter()) {
        for s in [
            testing::USER_PASSWORD,
            testing::ROOT_PASSWORD,
            secret_hex.as_str(),
            cookie.as_str(),
            "$argon2",
        ] {
            assert!(
                !page.to_lowercase().contains(&s.to_lowercase()),
                "{s} on a page"
            );
        }
    }
}

#[test]
fn sessions_are_bounded_and_rotate_at_sign_in() {
    let t = testing::T0;
    let (engine, _) = testing::in_memory_with_fobs(0, t);
    let console = Console::new(
        Arc::new(engine),
        HashMap::new(),
        vec![],
        Arc::new(SimClock::new(t)) as Arc<dyn Clock>,
        ConsoleConfig {
            max_sessions: 8,
            ..ConsoleConfig::default()
        },
    )
    .unwrap();
    for _ in 0..50 {
        Browser::new(&console).get("/console/signin");
    }
    assert_eq!(console.session_count(), 8);
    let mut b = Browser::new(&console);
    b.get("/console/signin");
    let before = b.cookie.clone().unwrap();
    b.sign_in("alice");
    assert_ne!(b.cookie.clone().unwrap(), before, "a sign-in gets a new id");
}

/// Over HTTP: `/console/*` to the console, the rest to the AWS API.
#[test]
fn routes_over_http() {
    let fx = fx(0);
    let clock = Arc::clone(&fx.clock) as Arc<dyn Clock>;
    let aws = Arc::new(
        fobsim_engine::api::service::AwsService::new(
            Arc::clone(&fx.engine),
            fobsim_engine::api::credentials::KeyRing::new(&[5; 32], Some(1)),
            HashMap::new(),
            clock,
            fobsim_engine::api::service::ServiceConfig::default(),
        )
        .unwrap(),
    );
    let routes = Arc::new(fobsim_engine::console::Routes::new(
        aws,
        Arc::clone(&fx.console),
    ));
    let server = fobsim_engine::api::server::Loopback::start_with(
        routes,
        fobsim_engine::api::server::Limits::default(),
        1,
    )
    .unwrap();
    let http = |req: String| {
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = http("GET /console/signin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into());
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_lowercase();
    assert!(lower.contains("set-cookie: fobsim_console="));
    assert!(
        lower.contains("httponly")
            && lower.contains("samesite=strict")
            && lower.contains("path=/console")
    );
    assert!(lower.contains("content-security-policy:"));
    assert!(page.contains("id=\"signin-form\""));
    let css =
        http("GET /console/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into());
    assert!(css.starts_with("HTTP/1.1 200") && css.to_lowercase().contains("text/css"));
    let api =
        http("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".into());
    assert!(api.contains("<ErrorResponse"), "{api}");
}
