//! Browser acceptance tests (issue 15): `fobsim up` driven by a person's
//! browser — real headless Chromium over WebDriver (the `chromedriver` and
//! `chromium` of `tests/browser/setup.sh`; missing, the tests fail with the
//! install hint). Each test starts its own `fobsim up` (free ports, its own
//! temp directory, a manual clock) and its own browser with two tabs: the
//! console (`/console`, docs/console.md) and the fob panel
//! (docs/control-api.md). Codes are read from the panel's DOM after
//! pressing a fob's button there, as a person reads the display.
//!
//! On a failure the test saves a screenshot under
//! `target/tmp/browser/` and names it in the panic message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/ready.rs"]
mod ready;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::cookies::Cookie;
use fantoccini::wd::WindowHandle;
use fobsim_emulator::http::client::PanelClient;
use fobsim_engines::webdriver::Browser;
use ready::Ready;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

/// The example bootstrap `fobsim up` embeds (fixtures/bootstrap/example.toml).
const ALIAS: &str = "fobsim-example";
const ROOT_EMAIL: &str = "root@example.com";
const ROOT_PASSWORD: &str = "root-Password-1";
/// The fleet of `fobsim up` (three `gaht` fobs).
const FOB1: &str = "GAHT00000001";
const FOB2: &str = "GAHT00000002";
const FOB3: &str = "GAHT00000003";

/// How long a page or a panel update may take.
const WAIT: Duration = Duration::from_secs(10);

fn password(user: &str) -> String {
    format!("{user}-Password-1")
}

/// A running `fobsim up` on a manual clock (frozen at 2026-01-01), its
/// temp directory (TMPDIR) and its ready line.
struct Up {
    up: Ready,
    _tmp: tempfile::TempDir,
}

impl Up {
    fn start() -> Up {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["up", "--listen", "127.0.0.1:0", "--panel", "127.0.0.1:0"])
            .args([
                "--json",
                "--clock",
                "manual",
                "--start",
                "2026-01-01T00:00:00Z",
            ])
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped());
        Up {
            up: Ready::start(cmd, "fobsim up"),
            _tmp: tmp,
        }
    }

    fn url(&self, key: &str) -> String {
        self.up.str(key).trim_end_matches('/').to_string()
    }

    /// `http://ADDR/console`.
    fn console(&self) -> String {
        self.url("console")
    }

    /// `http://ADDR` of the panel.
    fn panel(&self) -> String {
        self.url("panel")
    }

    /// A control-API request from outside the browser (JSON body).
    fn api(&self, method: &str, path: &str, body: &str) -> Value {
        let addr: SocketAddr = self.panel().trim_start_matches("http://").parse().unwrap();
        let a = PanelClient::connect(addr)
            .unwrap()
            .request(method, path, Some(body))
            .unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        a.json()
    }

    fn advance(&self, by: &str) -> Value {
        self.api(
            "POST",
            "/api/clock/advance",
            &json!({ "by": by }).to_string(),
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tab {
    Console,
    Panel,
}

/// One headless Chromium with the console in one tab and the panel in
/// another.
struct Web {
    browser: Browser,
    name: &'static str,
    console: String,
    tabs: [WindowHandle; 2],
    on: Tab,
    shots: u32,
}

/// Mark the document, so that a navigation is seen as a new one.
const MARK: &str = "window.__fobsimOld = true;";

/// What a console page shows.
const READ: &str = r#"
const q = (s) => document.querySelector(s);
const e = q('#error'), n = q('#notice'), w = q('#whoami');
const nav = performance.getEntriesByType('navigation')[0];
return {
  old: window.__fobsimOld === true,
  ready: document.readyState,
  page: (document.body && document.body.dataset.page) || '',
  status: (nav && nav.responseStatus) || 0,
  error: e ? { code: e.dataset.code || '', text: e.textContent.trim() } : null,
  notice: n ? n.textContent.trim() : null,
  whoami: w ? w.textContent.trim() : null,
};
"#;

/// A console page, read after it loaded.
#[derive(Debug, Clone, serde::Deserialize)]
struct Page {
    page: String,
    status: u16,
    error: Option<PageError>,
    notice: Option<String>,
    whoami: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct PageError {
    code: String,
    text: String,
}

impl Web {
    /// The browser, its console tab on the sign-in page and its panel tab
    /// showing the fleet.
    fn start(name: &'static str, up: &Up) -> Web {
        let browser = Browser::start("browser tests").unwrap_or_else(|p| panic!("{p}"));
        let c = browser.client().clone();
        let tabs = browser.block_on(async {
            let first = c.window().await.unwrap();
            let second = c.new_window(true).await.unwrap().handle;
            [first, second]
        });
        let mut web = Web {
            browser,
            name,
            console: up.console(),
            tabs,
            on: Tab::Console,
            shots: 0,
        };
        web.to(Tab::Panel);
        web.goto(&format!("{}/", up.panel()));
        web.wait("the panel draws the fleet", |w| {
            w.js(
                "return document.querySelectorAll('#fobs .fob-card').length",
                vec![],
            )
            .as_u64()
            .filter(|n| *n == 3)
        });
        web.to(Tab::Console);
        let p = web.console_get("/signin");
        web.check(p.page == "signin", format!("the sign-in page: {p:?}"));
        web
    }

    fn to(&mut self, tab: Tab) {
        if self.on != tab {
            let h = self.tabs[tab as usize].clone();
            let c = self.browser.client().clone();
            self.browser
                .block_on(async { c.switch_to_window(h).await })
                .unwrap();
            self.on = tab;
        }
    }

    /// Save a screenshot under target/tmp/browser and stop the test with
    /// `msg`, the screenshot's path and the page's address.
    fn fail(&mut self, msg: impl std::fmt::Display) -> ! {
        self.shots += 1;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}-{}.png", self.name, self.shots));
        let c = self.browser.client().clone();
        let (shot, url) = self.browser.block_on(async {
            (
                c.screenshot().await,
                c.current_url().await.map(|u| u.to_string()),
            )
        });
        let saved = match shot {
            Ok(png) => match std::fs::write(&path, png) {
                Ok(()) => format!("screenshot {}", path.display()),
                Err(e) => format!("no screenshot ({}: {e})", path.display()),
            },
            Err(e) => format!("no screenshot ({e})"),
        };
        panic!(
            "{}: {msg}\n  at {} ({saved})",
            self.name,
            url.unwrap_or_else(|e| format!("(no address: {e})"))
        );
    }

    fn check(&mut self, ok: bool, msg: impl std::fmt::Display) {
        if !ok {
            self.fail(msg);
        }
    }

    fn js(&self, script: &str, args: Vec<Value>) -> Value {
        let c = self.browser.client().clone();
        self.browser
            .block_on(async { c.execute(script, args).await })
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    /// Poll `f` (every 20 ms, at most [`WAIT`]) until it gives a value.
    fn wait<T>(&mut self, what: &str, f: impl Fn(&Web) -> Option<T>) -> T {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > until {
                self.fail(format!("not within {} s: {what}", WAIT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the document that replaced the marked one, loaded, and
    /// read it.
    fn settle(&mut self, after: &str) -> Page {
        let v = self.wait(&format!("a new page after {after}"), |w| {
            let v = w.js(READ, vec![]);
            (v["old"] == false && v["ready"] == "complete").then_some(v)
        });
        serde_json::from_value(v).unwrap()
    }

    fn goto(&mut self, url: &str) {
        let c = self.browser.client().clone();
        self.browser
            .block_on(async { c.goto(url).await })
            .unwrap_or_else(|e| panic!("{}: GET {url}: {e}", self.name));
    }

    /// GET a console path (`/signin`, ...) in the console tab.
    fn console_get(&mut self, path: &str) -> Page {
        self.to(Tab::Console);
        let url = format!("{}{path}", self.console);
        self.goto(&url);
        self.settle(&format!("GET {path}"))
    }

    fn element(&mut self, css: &str) -> fantoccini::elements::Element {
        let c = self.browser.client().clone();
        match self
            .browser
            .block_on(async { c.find(Locator::Css(css)).await })
        {
            Ok(e) => e,
            Err(e) => self.fail(format!("no {css}: {e}")),
        }
    }

    /// Click something that does not navigate.
    fn press(&mut self, css: &str) {
        let el = self.element(css);
        if let Err(e) = self.browser.block_on(async { el.click().await }) {
            self.fail(format!("click {css}: {e}"));
        }
    }

    /// Click a link or button that loads a new page, and read it.
    fn click(&mut self, css: &str) -> Page {
        self.js(MARK, vec![]);
        self.press(css);
        self.settle(&format!("clicking {css}"))
    }

    /// Type into `form#FORM [name=NAME]` (after emptying it).
    fn type_in(&mut self, form: &str, name: &str, text: &str) {
        let css = format!("form#{form} [name=\"{name}\"]");
        let el = self.element(&css);
        let r = self.browser.block_on(async {
            el.clear().await?;
            el.send_keys(text).await
        });
        if let Err(e) = r {
            self.fail(format!("type into {css}: {e}"));
        }
    }

    /// Fill in `fields` of `form#FORM` and click `button`: the next page.
    fn submit(&mut self, form: &str, fields: &[(&str, &str)], button: &str) -> Page {
        for (name, text) in fields {
            self.type_in(form, name, text);
        }
        self.click(button)
    }

    fn expect_page(&mut self, p: &Page, want: &str) {
        if p.page != want || p.error.is_some() {
            self.fail(format!(
                "expected the {want} page without an error, got {p:?}"
            ));
        }
    }

    fn expect_error(&mut self, p: &Page, page: &str, status: u16, code: &str) {
        let got = (
            p.page.as_str(),
            p.status,
            p.error.as_ref().map(|e| e.code.as_str()),
        );
        if got != (page, status, Some(code)) {
            self.fail(format!(
                "expected the {page} page with {status} #error[data-code={code}], got {p:?}"
            ));
        }
    }

    fn expect_notice(&mut self, p: &Page, page: &str, words: &[&str]) {
        let ok = p.page == page
            && p.error.is_none()
            && p.notice
                .as_deref()
                .is_some_and(|n| words.iter().all(|w| n.contains(w)));
        self.check(
            ok,
            format!("expected the {page} page with a #notice saying {words:?}, got {p:?}"),
        );
    }

    // ---- the panel ----------------------------------------------------------

    /// The panel's `#clock-now` text.
    fn panel_clock(&mut self) -> String {
        self.to(Tab::Panel);
        self.js(
            "return document.querySelector('#clock-now').textContent",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Click the panel's "+30 s" button and wait until its clock shows
    /// the moved time.
    fn panel_plus_30s(&mut self) {
        let before = self.panel_clock();
        self.press("button.step[data-by=\"30s\"]");
        self.wait("the panel's clock moves 30 s", |w| {
            let now = w.js(
                "return document.querySelector('#clock-now').textContent",
                vec![],
            );
            (now.as_str() != Some(before.as_str())).then_some(())
        });
    }

    /// What the LCD of `serial` shows on the panel (empty when blank).
    fn lcd(&self, serial: &str) -> String {
        self.js(
            "const d = document.querySelector('#fob-' + arguments[0] + ' .lcd .digits'); \
             return d ? d.textContent : '';",
            vec![serial.into()],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Press `serial`'s button on the panel and read the code its display
    /// shows (another than `previous`).
    fn code(&mut self, serial: &str, previous: Option<&str>) -> String {
        self.to(Tab::Panel);
        self.press(&format!("#fob-{serial} button.press"));
        let code = self.wait(&format!("a new code on {serial}'s display"), |w| {
            let c = w.lcd(serial);
            (c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) && Some(c.as_str()) != previous)
                .then_some(c)
        });
        self.to(Tab::Console);
        code
    }

    /// Two consecutive codes of `serial`: press, "+30 s", press.
    fn two_codes(&mut self, serial: &str) -> (String, String) {
        let c1 = self.code(serial, None);
        self.panel_plus_30s();
        let c2 = self.code(serial, Some(&c1));
        (c1, c2)
    }

    // ---- the console --------------------------------------------------------

    /// An IAM user's password step: the page it leads to.
    fn password_step(&mut self, user: &str) -> Page {
        let p = self.console_get("/signin");
        self.expect_page(&p, "signin");
        self.submit(
            "signin-form",
            &[
                ("account", ALIAS),
                ("username", user),
                ("password", &password(user)),
            ],
            "#signin",
        )
    }

    fn root_password_step(&mut self) -> Page {
        let p = self.console_get("/signin/root");
        self.expect_page(&p, "signin-root");
        self.submit(
            "root-signin-form",
            &[("email", ROOT_EMAIL), ("password", ROOT_PASSWORD)],
            "#signin-root",
        )
    }

    fn expect_home(&mut self, p: &Page, who: &str) {
        let ok = p.page == "home"
            && p.error.is_none()
            && p.whoami.as_deref().is_some_and(|w| w.contains(who));
        self.check(ok, format!("expected {who}'s home page, got {p:?}"));
    }

    /// Sign in `user` who has no device.
    fn sign_in(&mut self, user: &str) {
        let p = self.password_step(user);
        self.expect_home(&p, user);
    }

    /// Sign in `user` with its password and a code of `serial` read from
    /// the panel ("+30 s" first: a fresh one).
    fn sign_in_with(&mut self, user: &str, serial: &str) {
        let p = if user == "root" {
            self.root_password_step()
        } else {
            self.password_step(user)
        };
        self.expect_page(&p, "signin-mfa");
        self.panel_plus_30s();
        let code = self.code(serial, None);
        let p = self.submit("mfa-form", &[("code", &code)], "#verify-mfa");
        self.expect_home(&p, user);
    }

    fn sign_out(&mut self) {
        self.to(Tab::Console);
        let p = self.click("#signout");
        self.expect_notice(&p, "signin", &["signed out"]);
    }

    /// My security credentials → Assign MFA device → Hardware → Continue:
    /// the wizard's second step.
    fn open_wizard(&mut self) {
        let p = self.console_get("/home");
        self.expect_page(&p, "home");
        let p = self.click("a#nav-security-credentials");
        self.expect_page(&p, "security-credentials");
        let p = self.click("a#assign-mfa");
        self.expect_page(&p, "mfa-assign");
        self.press("#device-type-hardware");
        let p = self.click("#mfa-type-continue");
        self.expect_page(&p, "mfa-assign");
        self.element("form#assign-mfa-form");
    }

    fn assign(&mut self, serial: &str, c1: &str, c2: &str) -> Page {
        self.submit(
            "assign-mfa-form",
            &[("serial", serial), ("code1", c1), ("code2", c2)],
            "#assign-mfa",
        )
    }

    /// The wizard with two consecutive codes read from the panel: assigned.
    fn assign_from_panel(&mut self, serial: &str) {
        self.open_wizard();
        let (c1, c2) = self.two_codes(serial);
        let p = self.assign(serial, &c1, &c2);
        self.expect_notice(&p, "security-credentials", &[serial, "is assigned"]);
        self.expect_device(serial);
    }

    /// The credentials page on show lists `serial` as assigned.
    fn expect_device(&mut self, serial: &str) {
        let status = self.js(
            "const r = document.querySelector('#mfa-devices tr[data-serial=\"' + arguments[0] + '\"] td.status'); \
             return r ? r.textContent.trim() : null;",
            vec![serial.into()],
        );
        self.check(
            status == "Assigned",
            format!("#mfa-devices shows {serial} as Assigned: {status}"),
        );
    }

    /// The credentials page on show lists no device.
    fn expect_no_device(&mut self) {
        let v = self.js(
            "return [document.querySelectorAll('#mfa-devices tr[data-serial]').length, \
             !!document.querySelector('#no-mfa-devices')]",
            vec![],
        );
        self.check(v == json!([0, true]), format!("no device listed: {v}"));
    }

    /// The newest code of a development page's list (`#outbox` or `#phone`).
    fn newest_code(&mut self, list: &str, channel: &str) -> String {
        let p = self.console_get(&format!("/{list}"));
        self.expect_page(&p, list);
        let v = self.js(
            "const all = document.querySelectorAll('#' + arguments[0] + ' li[data-channel=\"' + arguments[1] + '\"] .code'); \
             return all.length ? all[all.length - 1].textContent.trim() : null;",
            vec![list.into(), channel.into()],
        );
        match v.as_str() {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => self.fail(format!("no {channel} code in #{list}")),
        }
    }

    /// The session cookie (to come back to this session later).
    fn session(&mut self) -> Cookie<'static> {
        let c = self.browser.client().clone();
        self.browser
            .block_on(async { c.get_named_cookie("fobsim_console").await })
            .unwrap()
    }

    /// Forget every cookie, then put `cookie` back (none: a fresh browser).
    fn use_session(&mut self, cookie: Option<Cookie<'static>>) {
        self.to(Tab::Console);
        let c = self.browser.client().clone();
        self.browser
            .block_on(async {
                c.delete_all_cookies().await?;
                if let Some(k) = cookie {
                    c.add_cookie(k).await?;
                }
                Ok::<_, fantoccini::error::CmdError>(())
            })
            .unwrap();
    }
}

#[test]
fn wizard_enables_with_codes_read_from_the_panel_then_sign_in_with_the_device() {
    let up = Up::start();
    let mut web = Web::start("wizard", &up);
    web.sign_in("alice");
    let p = web.click("a#nav-security-credentials");
    web.expect_page(&p, "security-credentials");
    web.expect_no_device();
    web.open_wizard();
    web.element("#sync-warning");
    let (c1, c2) = web.two_codes(FOB1);
    let p = web.assign(FOB1, &c1, &c2);
    web.expect_notice(
        &p,
        "security-credentials",
        &[&format!("The MFA device {FOB1} is assigned.")],
    );
    web.expect_device(FOB1);
    web.sign_out();
    // The password alone does not sign in any more: the code step.
    let p = web.password_step("alice");
    web.expect_page(&p, "signin-mfa");
    // A code already used (code 2 of the wizard) is refused.
    let p = web.submit("mfa-form", &[("code", &c2)], "#verify-mfa");
    web.expect_error(&p, "signin-mfa", 403, "AccessDenied");
    // A fresh one signs in.
    web.panel_plus_30s();
    let code = web.code(FOB1, Some(&c2));
    let p = web.submit("mfa-form", &[("code", &code)], "#verify-mfa");
    web.expect_home(&p, "alice");
}

#[test]
fn late_second_code_assigns_out_of_sync_then_resync_from_the_console() {
    let up = Up::start();
    let mut web = Web::start("late", &up);
    web.sign_in("alice");
    web.open_wizard();
    let (c1, c2) = web.two_codes(FOB1);
    // Ten minutes pass before the form is sent.
    up.advance("10m");
    let p = web.assign(FOB1, &c1, &c2);
    web.expect_notice(
        &p,
        "security-credentials",
        &["is assigned", "out of sync", "resync"],
    );
    web.expect_device(FOB1);
    let alice = web.session();
    // Another browser: the password, then the fob's current code: refused,
    // the device is out of sync.
    web.use_session(None);
    let p = web.password_step("alice");
    web.expect_page(&p, "signin-mfa");
    web.panel_plus_30s();
    let now = web.code(FOB1, None);
    let p = web.submit("mfa-form", &[("code", &now)], "#verify-mfa");
    web.expect_error(&p, "signin-mfa", 403, "AccessDenied");
    // Back in the first browser (still signed in): resync from the
    // credentials page with two consecutive codes.
    web.use_session(Some(alice));
    let p = web.console_get("/security-credentials");
    web.expect_page(&p, "security-credentials");
    let p = web.click(&format!("#mfa-devices tr[data-serial=\"{FOB1}\"] a.resync"));
    web.expect_page(&p, "mfa-resync");
    let kept = web.js(
        "return document.querySelector('form#resync-mfa-form [name=serial]').value",
        vec![],
    );
    web.check(
        kept == FOB1,
        format!("the resync form names the serial: {kept}"),
    );
    web.panel_plus_30s();
    let (r1, r2) = web.two_codes(FOB1);
    let p = web.submit(
        "resync-mfa-form",
        &[("code1", &r1), ("code2", &r2)],
        "#resync-mfa",
    );
    web.expect_notice(
        &p,
        "security-credentials",
        &[&format!("The MFA device {FOB1} is resynchronized.")],
    );
    web.sign_out();
    web.sign_in_with("alice", FOB1);
}

#[test]
fn a_device_in_use_by_another_user_is_refused() {
    let up = Up::start();
    let mut web = Web::start("in-use", &up);
    web.sign_in("alice");
    web.assign_from_panel(FOB1);
    web.sign_out();
    web.sign_in("bob");
    web.open_wizard();
    web.panel_plus_30s();
    let (c1, c2) = web.two_codes(FOB1);
    let p = web.assign(FOB1, &c1, &c2);
    web.expect_error(&p, "mfa-assign", 409, "EntityAlreadyExists");
    let text = p.error.map(|e| e.text).unwrap_or_default();
    web.check(
        text.contains("MFA Device is already in use."),
        format!("the in-use message: {text:?}"),
    );
    // Nothing changed: bob has no device, alice still has hers.
    let p = web.console_get("/security-credentials");
    web.expect_page(&p, "security-credentials");
    web.expect_no_device();
    web.sign_out();
    web.sign_in_with("alice", FOB1);
    let p = web.console_get("/security-credentials");
    web.expect_page(&p, "security-credentials");
    web.expect_device(FOB1);
}

#[test]
fn root_lost_device_recovery_end_to_end() {
    let up = Up::start();
    let mut web = Web::start("recovery", &up);
    let p = web.root_password_step();
    web.expect_home(&p, "root");
    web.assign_from_panel(FOB3);
    web.sign_out();
    // The device is lost: sign in using alternative factors.
    let p = web.root_password_step();
    web.expect_page(&p, "signin-mfa");
    let p = web.click("a#alt-factors");
    web.expect_page(&p, "recovery");
    let p = web.click("#send-email");
    web.expect_page(&p, "recovery-email");
    let email = web.newest_code("outbox", "email");
    let p = web.console_get("/recovery/email");
    web.expect_page(&p, "recovery-email");
    let p = web.submit(
        "recovery-email-form",
        &[("email_code", &email)],
        "#verify-email",
    );
    web.expect_page(&p, "recovery-phone");
    let phone = web.newest_code("phone", "phone");
    let p = web.console_get("/recovery/phone");
    web.expect_page(&p, "recovery-phone");
    let p = web.submit(
        "recovery-phone-form",
        &[("phone_code", &phone)],
        "#verify-phone",
    );
    // Signed in once without MFA, told to replace the device.
    web.expect_home(&p, "root");
    web.check(
        p.notice
            .as_deref()
            .is_some_and(|n| n.contains("without MFA") && n.contains("assign a new one")),
        format!("the notice says to replace the device: {p:?}"),
    );
    // Replace it: remove the lost one, assign another.
    let p = web.click("a#nav-security-credentials");
    web.expect_device(FOB3);
    web.expect_page(&p, "security-credentials");
    let p = web.click(&format!("#mfa-devices tr[data-serial=\"{FOB3}\"] a.remove"));
    web.expect_page(&p, "mfa-remove");
    let p = web.click("#remove-mfa");
    web.expect_notice(
        &p,
        "security-credentials",
        &[&format!("The MFA device {FOB3} is removed.")],
    );
    web.expect_no_device();
    web.assign_from_panel(FOB2);
    // The MFA-less sign-in was granted once: the code step again, with
    // the new device.
    web.sign_out();
    web.sign_in_with("root", FOB2);
}

#[test]
fn csrf_is_enforced_in_the_browser_and_echoed_input_is_text() {
    let up = Up::start();
    let mut web = Web::start("csrf", &up);
    web.sign_in("alice");
    web.open_wizard();
    let (c1, c2) = web.two_codes(FOB1);
    // The form without its CSRF token: 403, nothing assigned.
    let removed = web.js(
        "const i = document.querySelector('form#assign-mfa-form input[name=csrf_token]'); \
         if (!i || !i.value) return false; i.remove(); return true;",
        vec![],
    );
    web.check(removed == true, "the wizard's form carries a CSRF token");
    let p = web.assign(FOB1, &c1, &c2);
    web.expect_error(&p, "error", 403, "InvalidCsrfToken");
    let p = web.console_get("/security-credentials");
    web.expect_page(&p, "security-credentials");
    web.expect_no_device();
    // A wrong token on the sign-out form: 403, still signed in.
    web.js(
        "document.querySelector('form#signout-form input[name=csrf_token]').value = 'x' + 'A'.repeat(42);",
        vec![],
    );
    let p = web.click("#signout");
    web.expect_error(&p, "error", 403, "InvalidCsrfToken");
    let p = web.console_get("/home");
    web.expect_home(&p, "alice");
    // The same codes still assign the device: the refused form used
    // nothing up.
    web.open_wizard();
    let p = web.assign(FOB1, &c1, &c2);
    web.expect_notice(&p, "security-credentials", &[FOB1, "is assigned"]);

    // Escaping: markup typed into a field the page echoes stays text.
    let evil = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>";
    web.open_wizard();
    let p = web.assign(evil, "123456", "654321");
    web.check(
        p.error.is_some() && p.page == "mfa-assign",
        format!("the wizard refuses the serial: {p:?}"),
    );
    let v = web.js(
        "return { imgs: document.querySelectorAll('img').length, \
                  injected: [...document.scripts].filter(s => s.text.includes('__xss')).length, \
                  xss: window.__xss === undefined ? null : window.__xss, \
                  kept: document.querySelector('form#assign-mfa-form [name=serial]').value };",
        vec![],
    );
    web.check(
        v["imgs"] == 0 && v["injected"] == 0 && v["xss"].is_null(),
        format!("no element injected, no script run: {}", v),
    );
    // The serial comes back in the field (an attribute: the quote in it
    // must not end the attribute) and the error names what is wrong.
    let error = p.error.map(|e| e.text).unwrap_or_default();
    web.check(
        v["kept"] == evil && error.contains("found '<'"),
        format!("the typed text comes back as text: {v}"),
    );
    // A user name in a path, echoed in the refusal (alice may not see
    // other users).
    let p = web.console_get("/users/%3Cimg%20src%3Dx%20onerror%3D%22window.__xss%3D3%22%3E");
    web.check(p.error.is_some(), format!("refused: {p:?}"));
    let v = web.js(
        "return [document.querySelectorAll('img').length, window.__xss === undefined, \
                 document.querySelector('#error').textContent]",
        vec![],
    );
    web.check(
        v[0] == 0
            && v[1] == true
            && v[2]
                .as_str()
                .is_some_and(|t| t.contains("user/<img src=x onerror=\"window.__xss=3\">")),
        format!("no element injected, no script run: {v}"),
    );
}

#[test]
fn the_panel_follows_a_clock_moved_elsewhere_without_a_reload() {
    let up = Up::start();
    let mut web = Web::start("panel", &up);
    web.to(Tab::Panel);
    let before = web.panel_clock();
    web.check(
        before.starts_with("2026-01-01 00:00:00"),
        format!("#clock-now shows the start: {before:?}"),
    );
    let lcd = web.lcd(FOB1);
    web.check(
        lcd.is_empty(),
        format!("{FOB1}'s display is blank: {lcd:?}"),
    );
    web.js("window.__kept = 'still here';", vec![]);
    // Moved from outside the browser (the control API), not from the page.
    let moved = up.advance("1d");
    assert!(
        moved["clock"]["now"]
            .as_str()
            .is_some_and(|n| n.starts_with("2026-01-02T00:00:00")),
        "{moved}"
    );
    let pressed = up.api("POST", &format!("/api/fobs/{FOB1}/press"), "");
    let code = pressed["code"].as_str().unwrap().to_string();
    let shown = web.wait(
        "the panel shows the moved clock and the pressed code",
        |w| {
            let now = w.js(
                "return document.querySelector('#clock-now').textContent",
                vec![],
            );
            let now = now.as_str().unwrap_or_default();
            (now.starts_with("2026-01-02 00:00:00") && w.lcd(FOB1) == code).then(|| now.to_string())
        },
    );
    let v = web.js(
        "return [window.__kept || null, performance.getEntriesByType('navigation').length, \
                 performance.getEntriesByType('navigation')[0].type]",
        vec![],
    );
    web.check(
        v == json!(["still here", 1, "navigate"]),
        format!("the page was not reloaded ({shown}): {v}"),
    );
}
