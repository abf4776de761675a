//! The AWS console model served under `/console` by `fobsim serve`: the
//! pages of the seed ("Enabling a hardware MFA device (console)") over the
//! same [`Engine`], clock and IAM policies as the AWS API
//! ([`crate::api::service::AwsService`]). `docs/console.md` is the page map
//! and the DOM contract.
//!
//! - [`Console`]: one request in, one page out ([`Console::handle`]),
//!   and the [`Handler`] that runs it on the blocking pool;
//! - [`Routes`]: `/console/*` to the console, everything else to the API.
//!
//! Sessions live in memory (random 256-bit ids, `HttpOnly`,
//! `SameSite=Strict`, bounded in number, expiring when idle); every form
//! carries a CSRF token (the sign-in forms a pre-session one); pages are
//! askama templates compiled into the binary (escaped output).

mod pages;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use fobsim_core::{Channel, Clock, Principal, Timestamp};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use zeroize::Zeroizing;

use crate::Engine;
use crate::api::policy::{Decision, Policy, RequestContext, evaluate};
use crate::api::server::{Handler, Rejection};
use crate::api::service::AwsService;
use crate::engine::ct_eq;
use crate::error::{EngineError, ErrorKind};
use crate::types::{ConsoleSignIn, OutboxChannel};
use pages::{Layout, Link};
use session::{Pending, SignedIn};

/// The session cookie's name.
pub const COOKIE: &str = "fobsim_console";

/// The stylesheet (embedded).
const STYLE: &str = include_str!("../../templates/console/style.css");

/// The seed's warning about codes submitted late.
pub const SYNC_WARNING: &str = "Submit your request immediately after generating the authentication codes. If you generate the codes and then wait too long to submit the request, the MFA device successfully associates with the user but the MFA device becomes out of sync. This happens because time-based one-time passwords (TOTP) expire after a short period of time. If this happens, you can resync the device.";

/// Settings of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Most sessions held at once (the idlest go first beyond).
    pub max_sessions: usize,
    /// A signed-in session ends after this long unused.
    pub signed_in_idle: Duration,
    /// A session that is not signed in ends after this long unused.
    pub anonymous_idle: Duration,
    /// How long a correct password waits for its MFA code.
    pub pending_ttl: Duration,
    /// Serve the development pages (`/console/outbox`, `/console/phone`).
    pub dev_pages: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            max_sessions: 10_000,
            signed_in_idle: Duration::from_secs(12 * 3600),
            anonymous_idle: Duration::from_secs(30 * 60),
            pending_ttl: Duration::from_secs(5 * 60),
            dev_pages: true,
        }
    }
}

/// A request to the console (the parts it reads).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path (starts with `/console`).
    pub path: &'a str,
    /// The query string (without `?`).
    pub query: &'a str,
    /// The `Cookie` header, if any.
    pub cookie: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The console's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (a page).
    pub body: String,
    /// `Location` (redirects).
    pub location: Option<String>,
    /// `Set-Cookie`.
    pub set_cookie: Option<String>,
}

struct Account {
    id: String,
    alias: String,
    email: String,
    phone: String,
}

/// The console: pages over an engine, its policies and its clock.
pub struct Console {
    engine: Arc<Engine>,
    policies: HashMap<String, Vec<Arc<Policy>>>,
    users: Vec<String>,
    clock: Arc<dyn Clock>,
    account: Account,
    sessions: session::Store,
    config: ConsoleConfig,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("account_id", &self.account.id)
            .field("sessions", &self.sessions)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A refusal shown in `#error`.
#[derive(Debug, Clone)]
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
    /// The engine's kind when it is finer than the AWS code.
    kind: Option<String>,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            kind: None,
        }
    }

    fn shown(self) -> pages::PageError {
        pages::PageError {
            code: self.code.to_string(),
            message: self.message,
            kind: self.kind,
        }
    }
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match e.kind {
            ErrorKind::ServiceFailure => {
                // The detail stays in the server's log (never a secret).
                tracing::error!(message = %e.message, "console: engine failure");
                Refusal::new(500, "ServiceFailure", "The service failed: try again.")
            }
            ErrorKind::ServiceUnavailable => {
                Refusal::new(503, "ServiceUnavailable", "The service is busy: try again.")
            }
            _ => {
                let kind = format!("{:?}", e.kind);
                Refusal {
                    kind: (kind != e.aws_code()).then_some(kind),
                    ..Refusal::new(e.http_status(), e.aws_code(), e.message)
                }
            }
        }
    }
}

/// The request's session, loaded.
struct Ctx {
    sid: String,
    /// The session was made by this request (the cookie must be set).
    fresh: bool,
    csrf: String,
    signed_in: Option<SignedIn>,
    pending: Option<Principal>,
    flash: Option<String>,
    /// Set a cookie for this id on the answer.
    set_sid: Option<String>,
}

/// A parsed form or query: pairs, first value wins.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

const MAX_FIELDS: usize = 32;
const MAX_FIELD: usize = 2048;

/// Parse an `application/x-www-form-urlencoded` body strictly: UTF-8,
/// every pair with `=`, percent-escapes decoding to UTF-8, bounded.
fn parse_form(raw: &[u8]) -> Result<Form, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the form is not UTF-8")?;
    let pieces: Vec<&str> = text.split('&').filter(|p| !p.is_empty()).collect();
    if pieces.len() > MAX_FIELDS {
        return Err("the form has too many fields");
    }
    if pieces.iter().any(|p| !p.contains('=')) {
        return Err("a form field has no '='");
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(text).map_err(|_| "the form cannot be decoded")?;
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
    {
        return Err("a form field does not decode to UTF-8");
    }
    if pairs
        .iter()
        .any(|(k, v)| k.len() > MAX_FIELD || v.len() > MAX_FIELD)
    {
        return Err("a form field is too long");
    }
    Ok(Form(pairs))
}

/// Percent-encode a path segment or query value (user names, serials).
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn session_of(cookie: Option<&str>) -> Option<&str> {
    cookie?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
    })
}

fn redirect(to: &str) -> ConsoleResponse {
    ConsoleResponse {
        status: 303,
        content_type: "text/plain; charset=utf-8",
        body: format!("See {to}\n"),
        location: Some(to.to_string()),
        set_cookie: None,
    }
}

/// The principal's credentials page.
fn credentials_url(me: &Principal, target: &Principal) -> String {
    match target {
        t if t == me => "/console/security-credentials".to_string(),
        Principal::Root => "/console/security-credentials".to_string(),
        Principal::User(n) => format!("/console/users/{}", enc(n)),
    }
}

/// `a***@example.com`, `*******1234`.
fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((l, d)) => format!("{}***@{d}", l.chars().next().unwrap_or('*')),
        None => "***".to_string(),
    }
}

fn mask_phone(p: &str) -> String {
    let digits: Vec<char> = p.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("{}{tail}", "*".repeat(digits.len().saturating_sub(4)))
}

impl Console {
    /// A console over `engine` (whose account must exist), with the
    /// users' IAM `policies` (as the API has them), the account's `users`
    /// (for the Users page), reading time from `clock` (the API's).
    ///
    /// # Errors
    /// [`ErrorKind::NoSuchEntity`] when the engine has no account,
    /// [`ErrorKind::ServiceFailure`] when the store cannot be read.
    pub fn new(
        engine: Arc<Engine>,
        policies: HashMap<String, Vec<Arc<Policy>>>,
        users: Vec<String>,
        clock: Arc<dyn Clock>,
        config: ConsoleConfig,
    ) -> Result<Self, EngineError> {
        let row = engine.store().account()?.ok_or_else(|| {
            EngineError::new(ErrorKind::NoSuchEntity, "The account has not been created.")
        })?;
        let mut users = users;
        users.sort();
        users.dedup();
        Ok(Console {
            engine,
            policies,
            users,
            clock,
            account: Account {
                id: row.account_id,
                alias: row.alias,
                email: row.root_email,
                phone: row.root_phone,
            },
            sessions: session::Store::new(session::Limits {
                max_sessions: config.max_sessions,
                signed_in_idle: config.signed_in_idle,
                anonymous_idle: config.anonymous_idle,
                pending_ttl: config.pending_ttl,
            }),
            config,
        })
    }

    /// How many sessions the console holds.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Answer one request at the clock's time. Blocking (password hashes,
    /// the database): run it on a blocking pool.
    #[must_use]
    pub fn handle(&self, req: &ConsoleRequest<'_>) -> ConsoleResponse {
        let now = self.clock.now();
        if req.path == "/console/style.css" && req.method == "GET" {
            return ConsoleResponse {
                status: 200,
                content_type: "text/css; charset=utf-8",
                body: STYLE.to_string(),
                location: None,
                set_cookie: None,
            };
        }
        let Some(mut ctx) = self.load(req.cookie) else {
            return ConsoleResponse {
                status: 503,
                content_type: "text/plain; charset=utf-8",
                body: "No session could be made: the system has no randomness to give.\n"
                    .to_string(),
                location: None,
                set_cookie: None,
            };
        };
        let mut resp = self.route(now, req, &mut ctx);
        if let Some(sid) = ctx.set_sid.take() {
            resp.set_cookie = Some(format!(
                "{COOKIE}={sid}; Path=/console; HttpOnly; SameSite=Strict"
            ));
        }
        resp
    }

    fn load(&self, cookie: Option<&str>) -> Option<Ctx> {
        let found = session_of(cookie).and_then(|sid| {
            self.sessions
                .with(sid, |s| {
                    (
                        s.csrf.clone(),
                        s.signed_in.clone(),
                        s.pending.as_ref().map(|p| p.principal.clone()),
                        s.flash.take(),
                    )
                })
                .map(|v| (sid.to_string(), v))
        });
        let (sid, fresh, (csrf, signed_in, pending, flash)) = match found {
            Some((sid, v)) => (sid, false, v),
            None => {
                let sid = self.sessions.create(None)?;
                let csrf = self.sessions.with(&sid, |s| s.csrf.clone())?;
                (sid, true, (csrf, None, None, None))
            }
        };
        Some(Ctx {
            set_sid: fresh.then(|| sid.clone()),
            sid,
            fresh,
            csrf,
            signed_in,
            pending,
            flash,
        })
    }

    fn layout(&self, ctx: &Ctx, page: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            page,
            title: title.into(),
            whoami: ctx.signed_in.as_ref().map(|s| self.whoami(&s.principal)),
            error: None,
            notice: ctx.flash.clone(),
            csrf: ctx.csrf.clone(),
            dev_pages: self.config.dev_pages,
        }
    }

    fn whoami(&self, p: &Principal) -> String {
        let name = match p {
            Principal::Root => "root".to_string(),
            Principal::User(n) => n.clone(),
        };
        format!("{name} @ {} ({})", self.account.id, self.account.alias)
    }

    fn render(status: u16, t: &impl Template) -> ConsoleResponse {
        match t.render() {
            Ok(body) => ConsoleResponse {
                status,
                content_type: "text/html; charset=utf-8",
                body,
                location: None,
                set_cookie: None,
            },
            Err(_) => ConsoleResponse {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: "The page could not be rendered.\n".to_string(),
                location: None,
                set_cookie: None,
            },
        }
    }

    /// A page that only says something (errors, refusals).
    fn message(
        &self,
        ctx: &Ctx,
        page: &'static str,
        r: &Refusal,
        link: Option<Link>,
    ) -> ConsoleResponse {
        let mut l = self.layout(ctx, page, "fobsim console");
        l.error = Some(r.clone().shown());
        Self::render(r.status, &pages::Message { l, link })
    }

    fn set_flash(&self, ctx: &Ctx, msg: String) {
        let _ = self.sessions.with(&ctx.sid, |s| s.flash = Some(msg));
    }

    fn route(&self, now: Timestamp, req: &ConsoleRequest<'_>, ctx: &mut Ctx) -> ConsoleResponse {
        let post = match req.method {
            "GET" | "HEAD" => false,
            "POST" => true,
            _ => {
                return self.message(
                    ctx,
                    "error",
                    &Refusal::new(405, "MethodNotAllowed", "Use GET or POST."),
                    None,
                );
            }
        };
        let form = if post {
            let ct_ok = req.content_type.is_some_and(|c| {
                c.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
            let parsed = if ct_ok || req.body.is_empty() {
                parse_form(req.body)
            } else {
                Err("the body must be application/x-www-form-urlencoded")
            };
            match parsed {
                Ok(f) => f,
                Err(why) => {
                    return self.message(
                        ctx,
                        "error",
                        &Refusal::new(400, "MalformedForm", format!("Malformed form: {why}.")),
                        None,
                    );
                }
            }
        } else {
            match serde_urlencoded::from_str::<Vec<(String, String)>>(req.query) {
                Ok(p) => Form(p),
                Err(_) => {
                    return self.message(
                        ctx,
                        "error",
                        &Refusal::new(400, "MalformedForm", "Malformed query string."),
                        None,
                    );
                }
            }
        };
        if post && (ctx.fresh || !ct_eq(form.get("csrf_token").as_bytes(), ctx.csrf.as_bytes())) {
            return self.message(
                ctx,
                "error",
                &Refusal::new(
                    403,
                    "InvalidCsrfToken",
                    "The form has expired or did not come from this console: reload the page and try again.",
                ),
                Some(Link::new("/console/", "Back to the console")),
            );
        }
        let path = req.path.trim_end_matches('/');
        match (path, post) {
            ("/console", false) => redirect(if ctx.signed_in.is_some() {
                "/console/home"
            } else {
                "/console/signin"
            }),
            ("/console/signin", false) => self.signin_page(ctx, "", "", None),
            ("/console/signin", true) => self.signin_post(now, ctx, &form),
            ("/console/signin/root", false) => self.root_page(ctx, "", None),
            ("/console/signin/root", true) => self.root_post(now, ctx, &form),
            ("/console/signin/mfa", false) => self.mfa_page(ctx, None),
            ("/console/signin/mfa", true) => self.mfa_post(now, ctx, &form),
            ("/console/recovery", false) => self.recovery_page(ctx, 1, None),
            ("/console/recovery", true) => self.recovery_start(now, ctx),
            ("/console/recovery/email", false) => self.recovery_page(ctx, 2, None),
            ("/console/recovery/email", true) => self.recovery_email(ctx, &form),
            ("/console/recovery/phone", false) => self.recovery_page(ctx, 3, None),
            ("/console/recovery/phone", true) => self.recovery_phone(now, ctx, &form),
            ("/console/signout", true) => {
                self.sessions.remove(&ctx.sid);
                if let Some(sid) = self.sessions.create(Some("You have signed out.".into())) {
                    ctx.set_sid = Some(sid);
                }
                redirect("/console/signin")
            }
            ("/console/outbox" | "/console/phone", false) if self.config.dev_pages => {
                self.outbox_page(ctx, path == "/console/phone")
            }
            _ => self.signed_in_route(now, path, post, ctx, &form),
        }
    }

    fn signed_in_route(
        &self,
        now: Timestamp,
        path: &str,
        post: bool,
        ctx: &Ctx,
        form: &Form,
    ) -> ConsoleResponse {
        let known = matches!(
            path,
            "/console/home"
                | "/console/security-credentials"
                | "/console/users"
                | "/console/mfa/assign"
                | "/console/mfa/resync"
                | "/console/mfa/remove"
        ) || path.starts_with("/console/users/");
        if !known {
            return self.message(
                ctx,
                "error",
                &Refusal::new(404, "NotFound", "There is no such page in this console."),
                Some(Link::new("/console/", "Back to the console")),
            );
        }
        let Some(me) = ctx.signed_in.clone() else {
            return redirect("/console/signin");
        };
        match (path, post) {
            ("/console/home", false) => self.home_page(ctx, &me),
            ("/console/security-credentials", false) => {
                self.credentials_page(ctx, &me, &me.principal.clone())
            }
            ("/console/users", false) => self.users_page(ctx, &me),
            (p, false) if p.starts_with("/console/users/") => {
                let raw = &p["/console/users/".len()..];
                let name = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
                self.credentials_page(ctx, &me, &Principal::user(&name))
            }
            ("/console/mfa/assign", _) => self.assign(now, ctx, &me, form, post),
            ("/console/mfa/resync", _) => self.resync(now, ctx, &me, form, post),
            ("/console/mfa/remove", _) => self.remove(now, ctx, &me, form, post),
            _ => self.message(
                ctx,
                "error",
                &Refusal::new(
                    405,
                    "MethodNotAllowed",
                    "This page does not take that method.",
                ),
                None,
            ),
        }
    }

    // ---- sign-in -------------------------------------------------------

    fn signin_page(
        &self,
        ctx: &Ctx,
        account: &str,
        username: &str,
        err: Option<Refusal>,
    ) -> ConsoleResponse {
        let mut l = self.layout(ctx, "signin", "Sign in as IAM user");
        let status = err.as_ref().map_or(200, |e| e.status);
        l.error = err.map(Refusal::shown);
        Self::render(
            status,
            &pages::SignIn {
                l,
                account: account.to_string(),
                username: username.to_string(),
            },
        )
    }

    fn root_page(&self, ctx: &Ctx, email: &str, err: Option<Refusal>) -> ConsoleResponse {
        let mut l = self.layout(ctx, "signin-root", "Sign in as root user");
        let status = err.as_ref().map_or(200, |e| e.status);
        l.error = err.map(Refusal::shown);
        Self::render(
            status,
            &pages::SignInRoot {
                l,
                email: email.to_string(),
            },
        )
    }

    /// After a correct password: sign in, or ask for the code.
    fn after_password(
        &self,
        ctx: &mut Ctx,
        who: Principal,
        password: &str,
        outcome: ConsoleSignIn,
    ) -> ConsoleResponse {
        match outcome {
            ConsoleSignIn::MfaRequired => {
                let _ = self.sessions.with(&ctx.sid, |s| {
                    s.pending = Some(Pending {
                        principal: who,
                        password: Zeroizing::new(password.to_string()),
                        since: std::time::Instant::now(),
                        email_code: None,
                    });
                });
                redirect("/console/signin/mfa")
            }
            o => self.signed_in(ctx, who, o, None),
        }
    }

    fn signed_in(
        &self,
        ctx: &mut Ctx,
        who: Principal,
        how: ConsoleSignIn,
        flash: Option<String>,
    ) -> ConsoleResponse {
        let s = SignedIn {
            principal: who,
            mfa: how == ConsoleSignIn::WithMfa,
        };
        match self.sessions.sign_in(&ctx.sid, s, flash) {
            Some(sid) => {
                ctx.set_sid = Some(sid);
                redirect("/console/home")
            }
            None => redirect("/console/signin"),
        }
    }

    fn signin_post(&self, now: Timestamp, ctx: &mut Ctx, form: &Form) -> ConsoleResponse {
        let account = form.get("account").trim();
        let username = form.get("username").trim();
        let password = form.get("password");
        let ours = account == self.account.id || account.eq_ignore_ascii_case(&self.account.alias);
        // Another account: the same password-hash work as an unknown user.
        let who = if ours {
            Principal::user(username)
        } else {
            Principal::User(String::new())
        };
        match self.engine.console_sign_in_step(now, &who, password, None) {
            Ok(o) => self.after_password(ctx, who, password, o),
            Err(e) => self.signin_page(ctx, account, username, Some(e.into())),
        }
    }

    fn root_post(&self, now: Timestamp, ctx: &mut Ctx, form: &Form) -> ConsoleResponse {
        let email = form.get("email").trim();
        let password = form.get("password");
        let who = if email.eq_ignore_ascii_case(&self.account.email) {
            Principal::Root
        } else {
            Principal::User(String::new())
        };
        match self.engine.console_sign_in_step(now, &who, password, None) {
            Ok(o) => self.after_password(ctx, who, password, o),
            Err(e) => self.root_page(ctx, email, Some(e.into())),
        }
    }

    fn mfa_page(&self, ctx: &Ctx, err: Option<Refusal>) -> ConsoleResponse {
        let Some(who) = ctx.pending.clone() else {
            return redirect("/console/signin");
        };
        let mut l = self.layout(ctx, "signin-mfa", "Multi-factor authentication");
        let status = err.as_ref().map_or(200, |e| e.status);
        l.error = err.map(Refusal::shown);
        Self::render(
            status,
            &pages::SignInMfa {
                l,
                who: self.whoami(&who),
                root: who == Principal::Root,
            },
        )
    }

    fn mfa_post(&self, now: Timestamp, ctx: &mut Ctx, form: &Form) -> ConsoleResponse {
        let pending = self.sessions.with(&ctx.sid, |s| {
            s.pending
                .as_ref()
                .map(|p| (p.principal.clone(), p.password.clone()))
        });
        let Some(Some((who, password))) = pending else {
            return redirect("/console/signin");
        };
        let code = form.get("code").trim();
        match self
            .engine
            .console_sign_in_step(now, &who, &password, Some(code))
        {
            Ok(ConsoleSignIn::MfaRequired) => self.mfa_page(ctx, None),
            Ok(o) => self.signed_in(ctx, who, o, None),
            Err(e) => self.mfa_page(ctx, Some(e.into())),
        }
    }

    // ---- root recovery ---------------------------------------------------

    fn recovery_page(&self, ctx: &Ctx, step: u8, err: Option<Refusal>) -> ConsoleResponse {
        if ctx.pending != Some(Principal::Root) {
            return self.message(
                ctx,
                "recovery",
                &Refusal::new(
                    403,
                    "NotSignedIn",
                    "Sign in with the root user email address and password first; then choose Sign in using alternative factors.",
                ),
                Some(Link::new("/console/signin/root", "Sign in as root user")),
            );
        }
        let page = match step {
            1 => "recovery",
            2 => "recovery-email",
            _ => "recovery-phone",
        };
        let mut l = self.layout(ctx, page, "Sign in using alternative factors");
        let status = err.as_ref().map_or(200, |e| e.status);
        l.error = err.map(Refusal::shown);
        Self::render(
            status,
            &pages::Recovery {
                l,
                step,
                email: mask_email(&self.account.email),
                phone: mask_phone(&self.account.phone),
            },
        )
    }

    fn recovery_start(&self, now: Timestamp, ctx: &Ctx) -> ConsoleResponse {
        if ctx.pending != Some(Principal::Root) {
            return self.recovery_page(ctx, 1, None);
        }
        match self.engine.start_root_recovery(now) {
            Ok(()) => {
                let _ = self.sessions.with(&ctx.sid, |s| {
                    if let Some(p) = s.pending.as_mut() {
                        p.email_code = None;
                    }
                    s.flash = Some(format!(
                        "We sent a verification email to {}.",
                        mask_email(&self.account.email)
                    ));
                });
                redirect("/console/recovery/email")
            }
            Err(e) => self.recovery_page(ctx, 1, Some(e.into())),
        }
    }

    fn recovery_email(&self, ctx: &Ctx, form: &Form) -> ConsoleResponse {
        if ctx.pending != Some(Principal::Root) {
            return self.recovery_page(ctx, 1, None);
        }
        let code = form.get("email_code").trim().to_string();
        let _ = self.sessions.with(&ctx.sid, |s| {
            if let Some(p) = s.pending.as_mut() {
                p.email_code = Some(Zeroizing::new(code));
            }
            s.flash = Some("Email address verified. Now verify the phone number.".into());
        });
        redirect("/console/recovery/phone")
    }

    fn recovery_phone(&self, now: Timestamp, ctx: &mut Ctx, form: &Form) -> ConsoleResponse {
        let pending = self.sessions.with(&ctx.sid, |s| {
            s.pending.as_ref().and_then(|p| {
                (p.principal == Principal::Root).then(|| (p.password.clone(), p.email_code.clone()))
            })
        });
        let Some(Some((password, email_code))) = pending else {
            return self.recovery_page(ctx, 1, None);
        };
        let Some(email_code) = email_code else {
            return self.recovery_page(
                ctx,
                2,
                Some(Refusal::new(
                    400,
                    "ValidationError",
                    "Type the code from the email first.",
                )),
            );
        };
        let phone_code = form.get("phone_code").trim();
        if let Err(e) = self
            .engine
            .complete_root_recovery(now, &email_code, phone_code)
        {
            return self.recovery_page(ctx, 1, Some(e.into()));
        }
        match self
            .engine
            .console_sign_in_step(now, &Principal::Root, &password, None)
        {
            Ok(o @ (ConsoleSignIn::Recovered | ConsoleSignIn::WithoutMfa)) => self.signed_in(
                ctx,
                Principal::Root,
                o,
                Some("Your identity is verified: you are signed in once without MFA. Remove the lost MFA device now and assign a new one.".into()),
            ),
            Ok(_) => self.recovery_page(
                ctx,
                1,
                Some(Refusal::new(403, "AccessDenied", "The verification did not grant a sign-in; start again.")),
            ),
            Err(e) => self.recovery_page(ctx, 1, Some(e.into())),
        }
    }

    // ---- signed in -------------------------------------------------------

    fn arn(&self, p: &Principal) -> String {
        match p {
            Principal::Root => format!("arn:aws:iam::{}:root", self.account.id),
            Principal::User(n) => format!("arn:aws:iam::{}:user/{n}", self.account.id),
        }
    }

    /// The IAM policy check, as the API makes it: `action` (without
    /// `iam:`) by `me` on `resource`.
    fn authorize(&self, me: &SignedIn, action: &str, resource: &str) -> Result<(), Refusal> {
        let Principal::User(name) = &me.principal else {
            // Policies do not apply to the root user.
            return Ok(());
        };
        let ctx = RequestContext {
            action: &format!("iam:{action}"),
            resource,
            username: Some(name),
            mfa_present: Some(me.mfa),
        };
        let policies = self.policies.get(name).map_or(&[][..], Vec::as_slice);
        match evaluate(policies, &ctx) {
            Decision::Allow => Ok(()),
            d => Err(Refusal::new(
                403,
                "AccessDenied",
                fobsim_aws::query::not_authorized(
                    &self.arn(&me.principal),
                    action,
                    resource,
                    matches!(d, Decision::ExplicitDeny(_)),
                ),
            )),
        }
    }

    fn authorize_on(&self, me: &SignedIn, action: &str, target: &Principal) -> Result<(), Refusal> {
        if *target == Principal::Root && me.principal != Principal::Root {
            return Err(Refusal::new(
                403,
                "AccessDenied",
                "Only the root user manages the root user's MFA device.",
            ));
        }
        self.authorize(me, action, &self.arn(target))
    }

    fn home_page(&self, ctx: &Ctx, me: &SignedIn) -> ConsoleResponse {
        let l = self.layout(ctx, "home", "Console home");
        let devices = self
            .engine
            .list_mfa_devices(&me.principal)
            .map(|d| d.len())
            .unwrap_or(0);
        Self::render(
            200,
            &pages::Home {
                l,
                root: me.principal == Principal::Root,
                mfa: me.mfa,
                devices,
            },
        )
    }

    fn credentials_page(&self, ctx: &Ctx, me: &SignedIn, target: &Principal) -> ConsoleResponse {
        let mine = *target == me.principal;
        let page = if mine { "security-credentials" } else { "user" };
        let back = (!mine).then(|| Link::new("/console/users", "Back to Users"));
        if let Err(r) = self.authorize_on(me, "ListMFADevices", target) {
            return self.message(ctx, page, &r, back);
        }
        let devices = match self.engine.list_mfa_devices(target) {
            Ok(d) => d,
            Err(e) => return self.message(ctx, page, &e.into(), back),
        };
        let user_q = match (mine, target) {
            (false, Principal::User(n)) => n.clone(),
            _ => String::new(),
        };
        let suffix = if user_q.is_empty() {
            String::new()
        } else {
            format!("&user={}", enc(&user_q))
        };
        let rows = devices
            .iter()
            .map(|d| pages::DeviceRow {
                serial: d.serial.clone(),
                enabled: d.enable_date.to_string(),
                query: format!("serial={}{suffix}", enc(&d.serial)),
            })
            .collect();
        let title = if mine {
            "My security credentials".to_string()
        } else {
            format!("Security credentials of {}", target)
        };
        let l = self.layout(ctx, page, title.clone());
        Self::render(
            200,
            &pages::Credentials {
                l,
                heading: title,
                devices: rows,
                assign_query: if user_q.is_empty() {
                    String::new()
                } else {
                    format!("?user={}", enc(&user_q))
                },
                back,
            },
        )
    }

    fn users_page(&self, ctx: &Ctx, me: &SignedIn) -> ConsoleResponse {
        let resource = format!("arn:aws:iam::{}:user/*", self.account.id);
        if let Err(r) = self.authorize(me, "ListUsers", &resource) {
            return self.message(ctx, "users", &r, None);
        }
        let l = self.layout(ctx, "users", "Users");
        let users = self
            .users
            .iter()
            .map(|u| pages::UserRow {
                name: u.clone(),
                href: format!("/console/users/{}", enc(u)),
            })
            .collect();
        Self::render(200, &pages::Users { l, users })
    }

    fn target(me: &SignedIn, form: &Form) -> Principal {
        match form.get("user").trim() {
            "" => me.principal.clone(),
            n => Principal::user(n),
        }
    }

    fn mfa_form(
        &self,
        ctx: &Ctx,
        kind: pages::MfaKind,
        form: &Form,
        err: Option<Refusal>,
    ) -> ConsoleResponse {
        let mut l = self.layout(ctx, kind.page(), kind.title());
        let status = err.as_ref().map_or(200, |e| e.status);
        l.error = err.map(Refusal::shown);
        let choose = kind == pages::MfaKind::AssignChoose;
        Self::render(
            status,
            &pages::MfaForm {
                l,
                kind,
                choose,
                user: form.get("user").trim().to_string(),
                serial: form.get("serial").trim().to_string(),
                warning: SYNC_WARNING,
            },
        )
    }

    fn done(&self, ctx: &Ctx, me: &SignedIn, target: &Principal, msg: String) -> ConsoleResponse {
        self.set_flash(ctx, msg);
        redirect(&credentials_url(&me.principal, target))
    }

    fn assign(
        &self,
        now: Timestamp,
        ctx: &Ctx,
        me: &SignedIn,
        form: &Form,
        post: bool,
    ) -> ConsoleResponse {
        use pages::MfaKind;
        if !post {
            let kind = match form.get("device_type") {
                "hardware" => MfaKind::Assign,
                "" => MfaKind::AssignChoose,
                _ => {
                    return self.mfa_form(
                        ctx,
                        MfaKind::AssignChoose,
                        form,
                        Some(Refusal::new(
                            400,
                            "ValidationError",
                            "This console simulates hardware MFA devices only.",
                        )),
                    );
                }
            };
            return self.mfa_form(ctx, kind, form, None);
        }
        self.device_action(
            ctx,
            me,
            form,
            (MfaKind::Assign, "EnableMFADevice"),
            |target, serial| {
                self.engine.enable_mfa_device(
                    now,
                    Channel::Console,
                    target,
                    serial,
                    form.get("code1").trim(),
                    form.get("code2").trim(),
                )
            },
            |serial| format!("The MFA device {serial} is assigned. {SYNC_WARNING}"),
        )
    }

    fn resync(
        &self,
        now: Timestamp,
        ctx: &Ctx,
        me: &SignedIn,
        form: &Form,
        post: bool,
    ) -> ConsoleResponse {
        use pages::MfaKind;
        if !post {
            return self.mfa_form(ctx, MfaKind::Resync, form, None);
        }
        self.device_action(
            ctx,
            me,
            form,
            (MfaKind::Resync, "ResyncMFADevice"),
            |target, serial| {
                self.engine.resync_mfa_device(
                    now,
                    target,
                    serial,
                    form.get("code1").trim(),
                    form.get("code2").trim(),
                )
            },
            |serial| format!("The MFA device {serial} is resynchronized."),
        )
    }

    fn remove(
        &self,
        now: Timestamp,
        ctx: &Ctx,
        me: &SignedIn,
        form: &Form,
        post: bool,
    ) -> ConsoleResponse {
        use pages::MfaKind;
        if !post {
            return self.mfa_form(ctx, MfaKind::Remove, form, None);
        }
        self.device_action(
            ctx,
            me,
            form,
            (MfaKind::Remove, "DeactivateMFADevice"),
            |target, serial| self.engine.deactivate_mfa_device(now, target, serial),
            |serial| format!("The MFA device {serial} is removed."),
        )
    }

    /// A posted device form (assign, resync, remove): the signed-in
    /// principal's IAM policy allows `action` on the form's user, then the
    /// engine carries it out; the result page says `done`, a refusal comes
    /// back on the same form with the console's words for it.
    fn device_action(
        &self,
        ctx: &Ctx,
        me: &SignedIn,
        form: &Form,
        (kind, action): (pages::MfaKind, &str),
        run: impl FnOnce(&Principal, &str) -> Result<(), EngineError>,
        done: impl FnOnce(&str) -> String,
    ) -> ConsoleResponse {
        let target = Self::target(me, form);
        let serial = form.get("serial").trim();
        let r = self
            .authorize_on(me, action, &target)
            .and_then(|()| run(&target, serial).map_err(Refusal::from));
        match r {
            Ok(()) => self.done(ctx, me, &target, done(serial)),
            Err(e) => self.mfa_form(ctx, kind, form, Some(e)),
        }
    }

    fn outbox_page(&self, ctx: &Ctx, phone: bool) -> ConsoleResponse {
        let messages = self
            .engine
            .outbox()
            .into_iter()
            .filter(|m| !phone || m.channel == OutboxChannel::Phone)
            .map(|m| pages::OutboxRow {
                channel: match m.channel {
                    OutboxChannel::Email => "email",
                    OutboxChannel::Phone => "phone",
                },
                to: m.to,
                at: m.at.to_string(),
                code: m.code,
            })
            .collect();
        let (page, title) = if phone {
            ("phone", "Simulated phone")
        } else {
            ("outbox", "Outbox (mail catcher)")
        };
        let l = self.layout(ctx, page, title);
        Self::render(200, &pages::Outbox { l, phone, messages })
    }
}

fn to_hyper(r: ConsoleResponse) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    if let Some(v) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert("location", v);
    }
    if let Some(v) = r.set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("set-cookie", v);
    }
    resp
}

fn header<'a>(req: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The console over HTTP: every request runs on the blocking pool
/// (password hashes and the database).
impl Handler for Console {
    async fn respond(self: Arc<Self>, request: Request<Bytes>) -> Response<Full<Bytes>> {
        let started = std::time::Instant::now();
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let cookie = header(&request, "cookie").map(str::to_string);
        let ct = header(&request, "content-type").map(str::to_string);
        let body = request.into_body();
        let me = Arc::clone(&self);
        let (m, p) = (method.clone(), path.clone());
        let r = tokio::task::spawn_blocking(move || {
            me.handle(&ConsoleRequest {
                method: &m,
                path: &p,
                query: &query,
                cookie: cookie.as_deref(),
                content_type: ct.as_deref(),
                body: &body,
            })
        })
        .await
        .unwrap_or_else(|_| ConsoleResponse {
            status: 500,
            content_type: "text/plain; charset=utf-8",
            body: "The console failed.\n".to_string(),
            location: None,
            set_cookie: None,
        });
        tracing::info!(
            target: "fobsim::console",
            method = %method,
            path = %path.chars().take(128).collect::<String>(),
            status = r.status,
            ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
            "request"
        );
        to_hyper(r)
    }
}

/// `fobsim serve`'s routes: paths under `/console` to the [`Console`],
/// every other one to the [`AwsService`] (whose error shape the shell's
/// own refusals take).
#[derive(Debug)]
pub struct Routes {
    aws: Arc<AwsService>,
    console: Arc<Console>,
}

impl Routes {
    /// The API and the console, side by side.
    #[must_use]
    pub fn new(aws: Arc<AwsService>, console: Arc<Console>) -> Self {
        Routes { aws, console }
    }
}

impl Handler for Routes {
    async fn respond(self: Arc<Self>, request: Request<Bytes>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if path == "/console" || path.starts_with("/console/") {
            Arc::clone(&self.console).respond(request).await
        } else {
            Arc::clone(&self.aws).respond(request).await
        }
    }

    fn reject(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        self.aws.reject(rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_parsed_strictly() {
        assert_eq!(parse_form(b"a=1&b=x%20y").unwrap().get("b"), "x y");
        assert!(parse_form(b"a=1&b").is_err());
        assert!(parse_form(b"a=%FF").is_err());
        assert!(parse_form(&[b'a', b'=', 0xff]).is_err());
        assert!(parse_form(b"").unwrap().0.is_empty());
    }

    #[test]
    fn cookies_and_masks() {
        let id = "ab".repeat(32);
        let h = format!("x=1; {COOKIE}={id}; y=2");
        assert_eq!(session_of(Some(&h)), Some(id.as_str()));
        assert_eq!(session_of(Some("fobsim_console=short")), None);
        assert_eq!(mask_email("root@example.com"), "r***@example.com");
        assert_eq!(mask_phone("+1 555 0100"), "****0100");
    }
}
