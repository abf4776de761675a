//! The `console` adapter: fobsim's engine behind the AWS console model
//! (`/console`, docs/console.md), driven by a person's browser — headless
//! Chromium over WebDriver ([`crate::webdriver`]) — next to its AWS API.
//!
//! Each scenario gets a fresh server as with `iam-http` ([`IamHttp`], with
//! the console mounted the way `fobsim serve` mounts it): one engine, one
//! clock (set to the scenario's time before each request), the API and the
//! console side by side. One `chromedriver` and one browser serve the whole
//! run; cookies are cleared per scenario.
//!
//! What goes through the browser (the pages and ids of docs/console.md):
//!
//! | request | pages |
//! |---|---|
//! | `enable` (console channel; the root user always) | signed in as that principal: `/console/mfa/assign`, `device_type=hardware`, `serial`, `code1`, `code2`, `#assign-mfa` |
//! | `sign-in` | `/console/signin` (account, user, password) or `/console/signin/root` (email, password), then `/console/signin/mfa` (code) |
//! | `recover` | root sign-in, `#alt-factors`, `#send-email`; the outbox page; the email code, the phone code |
//! | `resync`, `deactivate` | when the principal's devices are managed in the console (the scenario enabled its last one there, or never through the API; the root user always): `/console/mfa/resync`, `/console/mfa/remove` |
//!
//! Everything else (sessions, `enable ... via api`, lists, imports, the
//! resync and deactivate of devices enabled through the API) goes through
//! the API as with `iam-http`, so scenarios mixing both work.
//!
//! Acting in the console needs a signed-in browser. The adapter keeps each
//! principal's session cookie (a person's own browser): the one a wizard's
//! password sign-in, a `sign-in` step or a recovery gave. A principal with
//! a device and no session cannot be signed in without typing a code the
//! scenario did not give; then the root user acts for the IAM user (the
//! console's Users page: `?user=NAME`), which the engine judges the same
//! way (the target user, the console channel); failing that, resync and
//! deactivate go through the API. The transcript's `trace` says which.
//!
//! Verdicts: `#error[data-code]` is the answer's AWS code, its `data-kind`
//! the engine's finer kind (`DeviceLocked`, ...) when it has one, and its
//! text the message (API steps, sessions among them, carry no kind, so
//! `error-kinds` is not declared); the status is the page's HTTP status (Navigation
//! Timing's `responseStatus`). Two answers are the adapter's reading of
//! what the console does rather than a verdict it shows:
//!
//! - `sign-in USER` without a code for a user with a device: the console
//!   asks for a code (`/console/signin/mfa`) and the person has none:
//!   `AccessDenied`, as the engine's one-call sign-in answers;
//! - `sign-in root` after a completed recovery: the console signs the root
//!   user in when the verification completes (the one MFA-less sign-in the
//!   engine grants); the `sign-in` step is answered by that session.
//!
//! Lock state (`expect DEV locked`) is no page's business: it is read from
//! the served engine, as the harness owns the server (the trace says so).

use std::collections::HashMap;

use fantoccini::Locator;
use fantoccini::cookies::Cookie;
use fobsim_core::{Channel, Principal, Timestamp};
use fobsim_harness::adapter::{
    Account, AdapterError, Answer, Capability, EngineAdapter, Message, OpenError, Reply, Request,
    Setup,
};
use serde::Deserialize;

use crate::builtin::StoreKind;
use crate::iam_http::IamHttp;
use crate::webdriver::Browser;

const NAME: &str = "console";

/// The console's and the API's together, but `error-kinds`: steps that go
/// through the API (sessions) get AWS's error shape, without the kind.
const CAPS: [Capability; 13] = [
    Capability::EnableTwoCodes,
    Capability::ApiEnable,
    Capability::ConsoleSignIn,
    Capability::SessionMfa,
    Capability::Resync,
    Capability::Deactivate,
    Capability::ListDevices,
    Capability::RootUser,
    Capability::RootRecovery,
    Capability::ObserveLockout,
    Capability::Settings,
    Capability::Import,
    Capability::AccessKeys,
];

/// The session cookie's name (docs/console.md).
const COOKIE: &str = "fobsim_console";

/// What the engine's one-call sign-in answers when a code is needed and
/// none is typed.
const MFA_REQUIRED: &str = "An MFA code is required: this user has an MFA device.";

/// How long a page may take to appear after a click.
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

fn transport(message: impl Into<String>) -> AdapterError {
    AdapterError::Transport {
        adapter: NAME.into(),
        message: message.into(),
    }
}

fn wd(what: &str) -> impl FnOnce(fantoccini::error::CmdError) -> AdapterError + '_ {
    move |e| transport(format!("WebDriver: {what}: {e}"))
}

/// `#error` of a page.
#[derive(Debug, Clone, Deserialize)]
struct PageError {
    code: String,
    text: String,
    /// `data-kind`: the engine's finer kind, when it has one.
    #[serde(default)]
    kind: Option<String>,
}

/// What a page shows, read in one script after it loaded.
#[derive(Debug, Clone, Deserialize)]
struct Page {
    /// `body[data-page]` (empty on a page without one).
    page: String,
    /// Path and query.
    path: String,
    /// The document's HTTP status (0 when the browser does not say).
    status: u16,
    error: Option<PageError>,
    notice: Option<String>,
    whoami: Option<String>,
    /// Still the document the last action started from.
    #[serde(default)]
    old: bool,
    #[serde(default)]
    ready: String,
}

impl Page {
    fn describe(&self) -> String {
        let mut s = if self.page.is_empty() {
            format!("{} (no data-page, {})", self.path, self.status)
        } else {
            format!("{} ({}, {})", self.page, self.path, self.status)
        };
        if let Some(w) = &self.whoami {
            s.push_str(&format!(" #whoami {w:?}"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" #error[data-code={}] {:?}", e.code, e.text));
        }
        if let Some(n) = &self.notice {
            // The first sentence: the assign notice goes on with the seed's
            // long warning.
            let first = n.split_inclusive(". ").next().unwrap_or(n).trim_end();
            s.push_str(&format!(" #notice {first:?}"));
        }
        s
    }

    fn signed_in_as(&self, who: &Principal) -> bool {
        self.whoami
            .as_deref()
            .is_some_and(|w| w.starts_with(&format!("{who} @ ")))
    }
}

/// Reads the page (after load), in one round trip.
const SNAPSHOT: &str = r"
const b = document.body;
const e = document.getElementById('error');
const n = document.getElementById('notice');
const w = document.getElementById('whoami');
const nav = performance.getEntriesByType('navigation')[0];
return {
  page: (b && b.dataset.page) || '',
  path: location.pathname + location.search,
  status: (nav && nav.responseStatus) || 0,
  error: e ? { code: e.dataset.code || '', text: e.textContent.trim(), kind: e.dataset.kind || null } : null,
  notice: n ? n.textContent.trim() : null,
  whoami: w ? w.textContent.trim() : null,
  old: window.__fobsimOld === true,
  ready: document.readyState,
};";

/// The outbox's messages (`#outbox li`), oldest first.
const OUTBOX: &str = r"
return Array.from(document.querySelectorAll('#outbox li[data-channel]')).map(li => ({
  channel: li.dataset.channel,
  to: ((li.querySelector('.to') || {}).textContent || '').trim(),
  code: ((li.querySelector('.code') || {}).textContent || '').trim(),
}));";

/// Finds a form's named fields and the button to click, empties the
/// fields to type and fills the others (`arguments[3]`: name → value), in
/// one round trip: `{fields: [element...], button: element}`, or
/// `{missing: what}`.
const FORM_PREPARE: &str = r"
const f = document.getElementById(arguments[0]);
if (!f || f.tagName !== 'FORM') return { missing: 'form#' + arguments[0] };
const fields = [];
for (const name of arguments[1]) {
  const el = f.querySelector('[name=' + JSON.stringify(name) + ']');
  if (!el) return { missing: 'form#' + arguments[0] + ' [name=' + JSON.stringify(name) + ']' };
  const fill = arguments[3][name];
  el.value = typeof fill === 'string' ? fill : '';
  fields.push(el);
}
const button = document.querySelector(arguments[2]);
if (!button) return { missing: arguments[2] };
return { fields, button };";

/// The values the browser kept in a form's named fields and the fields it
/// refuses to submit (constraint validation); marks the page as the one
/// the click starts from.
const FORM_STATE: &str = r"
const f = document.getElementById(arguments[0]);
const values = {};
for (const name of arguments[1]) {
  const el = f.elements.namedItem(name);
  values[name] = el ? el.value : null;
}
const invalid = Array.from(f.elements).filter(x => x.willValidate && !x.checkValidity())
  .map(x => x.name + ': ' + x.validationMessage);
window.__fobsimOld = true;
return { values, invalid };";

/// Finds an element and marks the page as the one a click starts from.
const FIND_MARK: &str = r"
const el = document.querySelector(arguments[0]);
window.__fobsimOld = true;
return el;";

/// A WebDriver element reference in a script's answer.
fn element(c: &fantoccini::Client, v: &serde_json::Value) -> Option<fantoccini::elements::Element> {
    let id = v.get("element-6066-11e4-a52e-4f735466cecf")?.as_str()?;
    Some(fantoccini::elements::Element::from_element_id(
        c.clone(),
        id.to_string().into(),
    ))
}

#[derive(Debug, Deserialize)]
struct FormState {
    values: HashMap<String, Option<String>>,
    invalid: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct OutboxRow {
    channel: String,
    to: String,
    code: String,
}

/// A field of a form: its `name` and value. Codes and serials are typed
/// key by key (the browser's `maxlength` and `pattern` apply, as to a
/// person's typing); credentials are filled in at once (a password
/// manager's way: 3 ms a key adds up over a suite of sign-ins). `secret`
/// values (the password) are never written in the trace.
struct Field<'a> {
    name: &'a str,
    value: &'a str,
    typed: bool,
    secret: Option<&'a str>,
}

impl<'a> Field<'a> {
    /// A field typed key by key.
    fn typed(name: &'a str, value: &'a str) -> Self {
        Field {
            name,
            value,
            typed: true,
            secret: None,
        }
    }

    /// A field filled in at once.
    fn filled(name: &'a str, value: &'a str) -> Self {
        Field {
            name,
            value,
            typed: false,
            secret: None,
        }
    }

    /// A secret filled in at once, shown as `shown` in the trace.
    fn secret(name: &'a str, value: &'a str, shown: &'a str) -> Self {
        Field {
            name,
            value,
            typed: false,
            secret: Some(shown),
        }
    }
}

/// How a form submission ended.
enum Submitted {
    /// A new page.
    Page(Page),
    /// The browser did not send it (constraint validation).
    Refused(Vec<String>),
}

/// One scenario's browser-side state.
#[derive(Debug, Default)]
struct Scenario {
    base: String,
    account: Account,
    passwords: HashMap<String, String>,
    /// Each principal's signed-in session cookie.
    sessions: HashMap<Principal, Cookie<'static>>,
    /// Where each principal's devices were last enabled.
    channels: HashMap<Principal, Channel>,
    /// A completed recovery signed the root user in (its session is in
    /// `sessions`) and no root sign-in has used it yet.
    recovered: bool,
}

/// The adapter (see the module documentation).
pub struct ConsoleAdapter {
    inner: IamHttp,
    browser: Browser,
    sc: Scenario,
    trace: Vec<String>,
}

impl std::fmt::Debug for ConsoleAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAdapter")
            .field("inner", &self.inner)
            .field("browser", &self.browser)
            .finish_non_exhaustive()
    }
}

impl ConsoleAdapter {
    /// Start the browser ([`Browser::start`]) for a run whose engines keep
    /// their state in `store`, their RNGs seeded with `seed`.
    ///
    /// # Errors
    /// [`OpenError::Setup`] when Chromium or chromedriver is missing or
    /// does not start.
    pub fn new(store: StoreKind, seed: u64) -> Result<Self, OpenError> {
        let browser = Browser::start(NAME)?;
        Ok(ConsoleAdapter {
            inner: IamHttp::with_store(store, seed).with_console(),
            browser,
            sc: Scenario::default(),
            trace: Vec::new(),
        })
    }

    /// The browser (for tests).
    #[must_use]
    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    // ---- WebDriver steps ---------------------------------------------------

    fn note(&mut self, line: String) {
        if std::env::var_os("FOBSIM_PROFILE_TMP").is_some() {
            static T: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
            let mut g = T.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            let d = g.map(|t| now - t).unwrap_or_default();
            *g = Some(now);
            eprintln!(
                "{:>6.1} ms  {}",
                d.as_secs_f64() * 1000.0,
                line.chars().take(90).collect::<String>()
            );
        }
        self.trace.push(line);
    }

    /// Wait until the document the last action started from is replaced
    /// and loaded, and read it.
    async fn settle(c: &fantoccini::Client) -> Result<Page, AdapterError> {
        let until = std::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let v = c
                .execute(SNAPSHOT, vec![])
                .await
                .map_err(wd("read the page"))?;
            let p: Page = serde_json::from_value(v)
                .map_err(|e| transport(format!("the page could not be read: {e}")))?;
            if !p.old && p.ready == "complete" {
                return Ok(p);
            }
            if std::time::Instant::now() > until {
                return Err(transport(format!(
                    "no new page within {} s after the last action (still {})",
                    PAGE_TIMEOUT.as_secs(),
                    p.describe()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn goto(&mut self, path: &str) -> Result<Page, AdapterError> {
        let url = format!("{}{path}", self.sc.base);
        let c = self.browser.client().clone();
        let page = self.browser.block_on(async {
            c.goto(&url).await.map_err(wd("navigate"))?;
            Self::settle(&c).await
        })?;
        self.note(format!("GET {path} → {}", page.describe()));
        Ok(page)
    }

    /// Click a link or control that navigates.
    fn click(&mut self, css: &str) -> Result<Page, AdapterError> {
        let c = self.browser.client().clone();
        let page = self.browser.block_on(async {
            let v = c
                .execute(FIND_MARK, vec![css.into()])
                .await
                .map_err(wd(&format!("find {css}")))?;
            let el = element(&c, &v).ok_or_else(|| transport(format!("the page has no {css}")))?;
            el.click().await.map_err(wd(&format!("click {css}")))?;
            Self::settle(&c).await
        })?;
        self.note(format!("clicked {css} → {}", page.describe()));
        Ok(page)
    }

    /// Type `fields` into `form#FORM` (by `name`), then click `button`.
    fn submit(
        &mut self,
        form: &str,
        fields: &[Field<'_>],
        button: &str,
    ) -> Result<Submitted, AdapterError> {
        let c = self.browser.client().clone();
        let names: Vec<serde_json::Value> = fields
            .iter()
            .filter(|f| f.secret.is_none())
            .map(|f| serde_json::Value::from(f.name))
            .collect();
        let all: Vec<serde_json::Value> = fields
            .iter()
            .map(|f| serde_json::Value::from(f.name))
            .collect();
        let fill: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .filter(|f| !f.typed)
            .map(|f| (f.name.to_string(), serde_json::Value::from(f.value)))
            .collect();
        let (state, outcome) = self.browser.block_on(async {
            let v = c
                .execute(
                    FORM_PREPARE,
                    vec![
                        form.into(),
                        serde_json::Value::Array(all),
                        button.into(),
                        serde_json::Value::Object(fill),
                    ],
                )
                .await
                .map_err(wd("find the form"))?;
            if let Some(m) = v.get("missing") {
                return Err(transport(format!("the page has no {m}")));
            }
            let found: Vec<_> = v
                .get("fields")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|e| element(&c, e)).collect())
                .unwrap_or_default();
            let button_el = v.get("button").and_then(|e| element(&c, e));
            let (Some(button_el), true) = (button_el, found.len() == fields.len()) else {
                return Err(transport(format!("form#{form}: no element references")));
            };
            for (f, el) in fields.iter().zip(&found).filter(|(f, _)| f.typed) {
                el.send_keys(f.value)
                    .await
                    .map_err(wd(&format!("type into form#{form} [name={}]", f.name)))?;
            }
            let v = c
                .execute(
                    FORM_STATE,
                    vec![form.into(), serde_json::Value::Array(names)],
                )
                .await
                .map_err(wd("read the form"))?;
            let state: FormState = serde_json::from_value(v)
                .map_err(|e| transport(format!("form#{form} could not be read ({e})")))?;
            button_el
                .click()
                .await
                .map_err(wd(&format!("click {button}")))?;
            if !state.invalid.is_empty() {
                // The browser keeps the page and shows its own message.
                return Ok((state, None));
            }
            let page = Self::settle(&c).await?;
            Ok::<_, AdapterError>((state, Some(page)))
        })?;
        let show = |f: &Field<'_>| match f.secret {
            Some(shown) => format!("{}={shown}", f.name),
            None => {
                let kept = state.values.get(f.name).cloned().flatten();
                match kept {
                    Some(k) if k != f.value => {
                        format!("{}={:?} (the field kept {k:?})", f.name, f.value)
                    }
                    _ => format!("{}={:?}", f.name, f.value),
                }
            }
        };
        let list = |typed: bool| {
            fields
                .iter()
                .filter(|f| f.typed == typed)
                .map(show)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut typed = String::new();
        for (verb, l) in [("filled in", list(false)), ("typed", list(true))] {
            if !l.is_empty() {
                typed.push_str(&format!("{verb} {l}; "));
            }
        }
        Ok(match outcome {
            Some(page) => {
                self.note(format!(
                    "form#{form}: {typed}clicked {button} → {}",
                    page.describe()
                ));
                Submitted::Page(page)
            }
            None => {
                self.note(format!(
                    "form#{form}: {typed}clicked {button}: the browser did not send the form ({})",
                    state.invalid.join("; ")
                ));
                Submitted::Refused(state.invalid)
            }
        })
    }

    /// A fresh cookie jar (a browser nobody signed in on).
    fn fresh_jar(&mut self) -> Result<(), AdapterError> {
        let c = self.browser.client().clone();
        self.browser
            .block_on(async { c.delete_all_cookies().await })
            .map_err(wd("delete cookies"))
    }

    fn save_session(&mut self, who: &Principal) -> Result<(), AdapterError> {
        let c = self.browser.client().clone();
        let cookie = self
            .browser
            .block_on(async { c.get_named_cookie(COOKIE).await })
            .map_err(wd("read the session cookie"))?;
        self.sc.sessions.insert(who.clone(), cookie);
        Ok(())
    }

    /// Put `who`'s saved session in the jar and check that it is still
    /// signed in.
    fn resume(&mut self, who: &Principal) -> Result<bool, AdapterError> {
        let Some(cookie) = self.sc.sessions.get(who).cloned() else {
            return Ok(false);
        };
        let c = self.browser.client().clone();
        self.browser
            .block_on(async {
                c.delete_all_cookies().await?;
                c.add_cookie(cookie).await
            })
            .map_err(wd("restore a session cookie"))?;
        self.note(format!("{who}'s browser (its saved session)"));
        let page = self.goto("/console/home")?;
        if page.page == "home" && page.signed_in_as(who) {
            return Ok(true);
        }
        self.sc.sessions.remove(who);
        Ok(false)
    }

    /// The password sign-in page of `who`, typed and sent, in a fresh jar.
    fn password_step(
        &mut self,
        who: &Principal,
        password_ok: bool,
    ) -> Result<Submitted, AdapterError> {
        self.fresh_jar()?;
        let right = match who {
            Principal::Root => self.sc.account.root_password.clone(),
            Principal::User(u) => self.sc.passwords.get(u).cloned().unwrap_or_default(),
        };
        let (password, shown) = if password_ok {
            (right, "(the right password)")
        } else {
            (format!("{right}-wrong"), "(a wrong password)")
        };
        match who {
            Principal::Root => {
                let page = self.goto("/console/signin/root")?;
                self.expect_page(&page, "signin-root")?;
                let email = self.sc.account.root_email.clone();
                self.submit(
                    "root-signin-form",
                    &[
                        Field::filled("email", &email),
                        Field::secret("password", &password, shown),
                    ],
                    "#signin-root",
                )
            }
            Principal::User(name) => {
                let page = self.goto("/console/signin")?;
                self.expect_page(&page, "signin")?;
                let account = self.sc.account.id.clone();
                self.submit(
                    "signin-form",
                    &[
                        Field::filled("account", &account),
                        Field::filled("username", name),
                        Field::secret("password", &password, shown),
                    ],
                    "#signin",
                )
            }
        }
    }

    fn expect_page(&self, page: &Page, want: &str) -> Result<(), AdapterError> {
        if page.page == want {
            Ok(())
        } else {
            Err(transport(format!(
                "expected the console's {want} page, got {}",
                page.describe()
            )))
        }
    }

    /// A browser signed in as `who` without typing a code: its saved
    /// session, or a password sign-in (a principal without a device).
    fn session_as(&mut self, who: &Principal) -> Result<bool, AdapterError> {
        if self.resume(who)? {
            return Ok(true);
        }
        match self.password_step(who, true)? {
            Submitted::Page(p) if p.page == "home" && p.signed_in_as(who) => {
                self.save_session(who)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sign the browser in to act on `who`'s devices: as `who`, else as the
    /// root user for the IAM user `who`. The `user=` query of the pages
    /// (empty: my own), or `None` when neither can sign in without a code.
    fn act_for(&mut self, who: &Principal) -> Result<Option<String>, AdapterError> {
        if self.session_as(who)? {
            return Ok(Some(String::new()));
        }
        if let Principal::User(name) = who {
            self.note(format!(
                "{who} has a device and no console session: the root user acts for {who} (Users → {who})"
            ));
            if self.session_as(&Principal::Root)? {
                return Ok(Some(name.clone()));
            }
        }
        Ok(None)
    }

    /// The answer a page gives: its `#error`, else success when it is one
    /// of `ok_pages`.
    fn verdict(&self, s: Submitted, ok_pages: &[&str]) -> Result<Answer, AdapterError> {
        match s {
            Submitted::Refused(why) => Ok(Answer::Error {
                code: "ValidationError".into(),
                status: 400,
                kind: None,
                message: format!("The browser did not send the form: {}", why.join("; ")),
            }),
            Submitted::Page(p) => Self::page_verdict(&p, ok_pages),
        }
    }

    fn page_verdict(p: &Page, ok_pages: &[&str]) -> Result<Answer, AdapterError> {
        if let Some(e) = &p.error {
            return Ok(Answer::Error {
                code: e.code.clone(),
                status: if p.status == 0 {
                    status_of(&e.code)
                } else {
                    p.status
                },
                kind: e.kind.clone(),
                message: e.text.clone(),
            });
        }
        if ok_pages.contains(&p.page.as_str()) {
            return Ok(Answer::ok());
        }
        Err(transport(format!(
            "the console showed {}: neither a verdict (#error) nor the page that follows success ({})",
            p.describe(),
            ok_pages.join(", ")
        )))
    }

    fn query(user: &str, first: bool) -> String {
        if user.is_empty() {
            String::new()
        } else {
            let enc: String = user
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{}user={enc}", if first { '?' } else { '&' })
        }
    }

    // ---- requests ------------------------------------------------------------

    fn enable(
        &mut self,
        who: &Principal,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Answer, AdapterError> {
        let Some(user) = self.act_for(who)? else {
            return Err(transport(format!(
                "no console session can act for {who} without an MFA code the scenario did not give"
            )));
        };
        let page = self.goto(&format!("/console/mfa/assign{}", Self::query(&user, true)))?;
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        self.expect_page(&page, "mfa-assign")?;
        let c = self.browser.client().clone();
        self.browser
            .block_on(async {
                c.find(Locator::Css("#device-type-hardware"))
                    .await?
                    .click()
                    .await
            })
            .map_err(wd("choose Hardware MFA device"))?;
        self.note("chose #device-type-hardware".into());
        let step2 = self.submit("mfa-type-form", &[], "#mfa-type-continue")?;
        let Submitted::Page(step2) = step2 else {
            return self.verdict(step2, &[]);
        };
        if step2.error.is_some() {
            return Self::page_verdict(&step2, &[]);
        }
        self.expect_page(&step2, "mfa-assign")?;
        let s = self.submit(
            "assign-mfa-form",
            &[
                Field::typed("serial", serial),
                Field::typed("code1", code1),
                Field::typed("code2", code2),
            ],
            "#assign-mfa",
        )?;
        self.verdict(s, &["security-credentials", "user"])
    }

    /// Resync (`code` = Some) or remove a device in the console; `None`
    /// when no session can act for `who` (then the API does it).
    fn manage(
        &mut self,
        who: &Principal,
        serial: &str,
        codes: Option<(&str, &str)>,
    ) -> Result<Option<Answer>, AdapterError> {
        let Some(user) = self.act_for(who)? else {
            return Ok(None);
        };
        let (path, page_name, form, button) = match codes {
            Some(_) => (
                "/console/mfa/resync",
                "mfa-resync",
                "resync-mfa-form",
                "#resync-mfa",
            ),
            None => (
                "/console/mfa/remove",
                "mfa-remove",
                "remove-mfa-form",
                "#remove-mfa",
            ),
        };
        let page = self.goto(&format!("{path}{}", Self::query(&user, true)))?;
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]).map(Some);
        }
        self.expect_page(&page, page_name)?;
        let mut fields = vec![Field::typed("serial", serial)];
        if let Some((c1, c2)) = codes {
            fields.push(Field::typed("code1", c1));
            fields.push(Field::typed("code2", c2));
        }
        let s = self.submit(form, &fields, button)?;
        self.verdict(s, &["security-credentials", "user"]).map(Some)
    }

    fn sign_in(
        &mut self,
        who: &Principal,
        password_ok: bool,
        code: Option<&str>,
    ) -> Result<Answer, AdapterError> {
        if *who == Principal::Root && password_ok && code.is_none() && self.sc.recovered {
            self.sc.recovered = false;
            self.note(
                "the completed recovery signed the root user in (the console signs in when the verification completes): that sign-in"
                    .into(),
            );
            if self.resume(who)? {
                return Ok(Answer::ok());
            }
        }
        let s = self.password_step(who, password_ok)?;
        let page = match s {
            Submitted::Page(p) => p,
            refused @ Submitted::Refused(_) => return self.verdict(refused, &[]),
        };
        if page.page == "home" && page.error.is_none() {
            if code.is_some() {
                self.note("the console did not ask for a code (no device)".into());
            }
            self.save_session(who)?;
            return Ok(Answer::ok());
        }
        if page.page != "signin-mfa" || page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        let Some(code) = code else {
            self.note("the console asks for the MFA code; the scenario types none: refused".into());
            return Ok(Answer::Error {
                code: "AccessDenied".into(),
                status: 403,
                kind: None,
                message: MFA_REQUIRED.into(),
            });
        };
        let s = self.submit("mfa-form", &[Field::typed("code", code)], "#verify-mfa")?;
        let answer = self.verdict(s, &["home"])?;
        if answer.is_ok() {
            self.save_session(who)?;
        }
        Ok(answer)
    }

    fn start_recovery(&mut self) -> Result<Answer, AdapterError> {
        let s = self.password_step(&Principal::Root, true)?;
        let page = match s {
            Submitted::Page(p) => p,
            refused @ Submitted::Refused(_) => return self.verdict(refused, &[]),
        };
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        let page = if page.page == "signin-mfa" {
            self.click("a#alt-factors")?
        } else {
            // No device: the console signed in; recovery is not offered.
            self.goto("/console/recovery")?
        };
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        self.expect_page(&page, "recovery")?;
        let s = self.submit("recovery-start-form", &[], "#send-email")?;
        self.verdict(s, &["recovery-email"])
    }

    fn outbox(&mut self) -> Result<Answer, AdapterError> {
        let page = self.goto("/console/outbox")?;
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        self.expect_page(&page, "outbox")?;
        let c = self.browser.client().clone();
        let v = self
            .browser
            .block_on(async { c.execute(OUTBOX, vec![]).await })
            .map_err(wd("read the outbox"))?;
        let rows: Vec<OutboxRow> = serde_json::from_value(v)
            .map_err(|e| transport(format!("the outbox could not be read: {e}")))?;
        self.note(format!("#outbox: {} message(s)", rows.len()));
        Ok(Answer::Ok {
            data: Reply::Messages {
                messages: rows
                    .into_iter()
                    .map(|r| Message {
                        channel: r.channel,
                        to: r.to,
                        code: r.code,
                    })
                    .collect(),
            },
        })
    }

    fn complete_recovery(
        &mut self,
        email_code: &str,
        phone_code: &str,
    ) -> Result<Answer, AdapterError> {
        let page = self.goto("/console/recovery/email")?;
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        self.expect_page(&page, "recovery-email")?;
        let s = self.submit(
            "recovery-email-form",
            &[Field::typed("email_code", email_code)],
            "#verify-email",
        )?;
        let page = match s {
            Submitted::Page(p) => p,
            refused @ Submitted::Refused(_) => return self.verdict(refused, &[]),
        };
        if page.error.is_some() {
            return Self::page_verdict(&page, &[]);
        }
        self.expect_page(&page, "recovery-phone")?;
        let s = self.submit(
            "recovery-phone-form",
            &[Field::typed("phone_code", phone_code)],
            "#verify-phone",
        )?;
        let answer = self.verdict(s, &["home"])?;
        if answer.is_ok() {
            self.save_session(&Principal::Root)?;
            self.sc.recovered = true;
        }
        Ok(answer)
    }

    fn device_state(&mut self, now: Timestamp, serial: &str) -> Answer {
        self.note("read from the served engine: no console page shows a lock".into());
        match self.inner.engine().and_then(|e| e.token_state(serial)) {
            Some(s) => Answer::Ok {
                data: Reply::State {
                    locked: s.locked_until.is_some_and(|u| now < u),
                    assigned_to: s.assigned_to.map(|p| p.to_string()),
                },
            },
            None => Answer::Error {
                code: "NoSuchEntity".into(),
                status: 404,
                kind: None,
                message: format!("MFA Device with serial number {serial} does not exist."),
            },
        }
    }

    /// Whether `who`'s devices are managed in the console: the root user's
    /// always; an IAM user's unless its last enable went through the API.
    fn in_console(&self, who: &Principal) -> bool {
        *who == Principal::Root || self.sc.channels.get(who) != Some(&Channel::Api)
    }
}

/// The status docs/console.md gives a code, when the browser does not tell
/// the page's own.
fn status_of(code: &str) -> u16 {
    match code {
        "ValidationError" | "MalformedForm" => 400,
        "NoSuchEntity" | "NotFound" => 404,
        "EntityAlreadyExists" | "LimitExceeded" => 409,
        "MethodNotAllowed" => 405,
        "ServiceFailure" => 500,
        "ServiceUnavailable" => 503,
        _ => 403,
    }
}

impl EngineAdapter for ConsoleAdapter {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.trace.clear();
        self.inner.begin(setup).map_err(|e| match e {
            AdapterError::Setup { message, .. } => AdapterError::Setup {
                adapter: NAME.into(),
                message,
            },
            AdapterError::Setting { key, message, .. } => AdapterError::Setting {
                adapter: NAME.into(),
                key,
                message,
            },
            AdapterError::Transport { message, .. } => transport(message),
        })?;
        let base = self
            .inner
            .endpoint()
            .ok_or_else(|| transport("no server after begin"))?;
        self.sc = Scenario {
            base: base.clone(),
            account: setup.account.clone(),
            passwords: setup.users.iter().cloned().collect(),
            ..Scenario::default()
        };
        // A new tab (the old one's renderer memory goes), a document of
        // the new server (cookies are per host, not per port), then no
        // cookies: nobody is signed in.
        self.browser.fresh_tab().map_err(|e| AdapterError::Setup {
            adapter: NAME.into(),
            message: format!("the browser cannot open a tab: {e}"),
        })?;
        let c = self.browser.client().clone();
        let url = format!("{base}/console/style.css");
        self.browser
            .block_on(async {
                c.goto(&url).await?;
                c.delete_all_cookies().await
            })
            .map_err(|e| AdapterError::Setup {
                adapter: NAME.into(),
                message: format!("the browser cannot open the console: {e}"),
            })?;
        Ok(())
    }

    fn check_setting(&self, key: &str, value: &str) -> Result<(), String> {
        crate::builtin::check_setting(key, value)
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        if self.sc.base.is_empty() {
            return Err(transport("call before begin"));
        }
        self.inner.set_clock(now);
        match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                channel,
            } => {
                self.sc.channels.insert(who.clone(), *channel);
                if *channel == Channel::Api {
                    return self.api(now, request);
                }
                self.enable(who, serial, code1, code2)
            }
            Request::Resync {
                who,
                serial,
                code1,
                code2,
            } if self.in_console(who) => match self.manage(who, serial, Some((code1, code2)))? {
                Some(a) => Ok(a),
                None => {
                    self.note(format!(
                        "no console session can act for {who} without an MFA code: through the API"
                    ));
                    self.api(now, request)
                }
            },
            Request::Deactivate { who, serial } if self.in_console(who) => {
                match self.manage(who, serial, None)? {
                    Some(a) => Ok(a),
                    None => {
                        self.note(format!(
                            "no console session can act for {who} without an MFA code: through the API"
                        ));
                        self.api(now, request)
                    }
                }
            }
            Request::SignIn {
                who,
                password_ok,
                code,
            } => self.sign_in(who, *password_ok, code.as_deref()),
            Request::StartRecovery => self.start_recovery(),
            Request::Outbox => self.outbox(),
            Request::CompleteRecovery {
                email_code,
                phone_code,
            } => self.complete_recovery(email_code, phone_code),
            Request::DeviceState { serial } => Ok(self.device_state(now, serial)),
            _ => self.api(now, request),
        }
    }

    fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }
}

impl ConsoleAdapter {
    fn api(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        self.inner.call(now, request).map_err(|e| match e {
            AdapterError::Transport { message, .. } => transport(message),
            other => other,
        })
    }
}
