//! The console's pages: askama templates (`engine/templates/console/`),
//! compiled into the binary; every value is HTML-escaped.

use askama::Template;

/// `#error`: the AWS code, the message, and the engine's finer kind of
/// refusal when it has one (`DeviceLocked`, ...: `data-kind`).
pub(crate) struct PageError {
    pub code: String,
    pub message: String,
    pub kind: Option<String>,
}

/// What every page shows around its content.
pub(crate) struct Layout {
    /// `body[data-page]`.
    pub page: &'static str,
    pub title: String,
    /// The signed-in principal (nav bar), if any.
    pub whoami: Option<String>,
    /// `#error`.
    pub error: Option<PageError>,
    /// `#notice`.
    pub notice: Option<String>,
    /// This session's CSRF token (hidden in every POST form).
    pub csrf: String,
    pub dev_pages: bool,
}

/// A link on a message page.
pub(crate) struct Link {
    pub href: String,
    pub text: String,
}

impl Link {
    pub fn new(href: &str, text: &str) -> Self {
        Link {
            href: href.to_string(),
            text: text.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub(crate) struct Message {
    pub l: Layout,
    pub link: Option<Link>,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
pub(crate) struct SignIn {
    pub l: Layout,
    pub account: String,
    pub username: String,
}

#[derive(Template)]
#[template(path = "console/signin_root.html")]
pub(crate) struct SignInRoot {
    pub l: Layout,
    pub email: String,
}

#[derive(Template)]
#[template(path = "console/signin_mfa.html")]
pub(crate) struct SignInMfa {
    pub l: Layout,
    pub who: String,
    pub root: bool,
}

#[derive(Template)]
#[template(path = "console/recovery.html")]
pub(crate) struct Recovery {
    pub l: Layout,
    pub step: u8,
    pub email: String,
    pub phone: String,
}

#[derive(Template)]
#[template(path = "console/home.html")]
pub(crate) struct Home {
    pub l: Layout,
    pub root: bool,
    pub mfa: bool,
    pub devices: usize,
}

pub(crate) struct DeviceRow {
    pub serial: String,
    pub enabled: String,
    /// `serial=...&user=...` (encoded).
    pub query: String,
}

#[derive(Template)]
#[template(path = "console/credentials.html")]
pub(crate) struct Credentials {
    pub l: Layout,
    pub heading: String,
    pub devices: Vec<DeviceRow>,
    /// `?user=...` or empty.
    pub assign_query: String,
    pub back: Option<Link>,
}

pub(crate) struct UserRow {
    pub name: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub(crate) struct Users {
    pub l: Layout,
    pub users: Vec<UserRow>,
}

/// Which MFA form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MfaKind {
    AssignChoose,
    Assign,
    Resync,
    Remove,
}

impl MfaKind {
    pub fn page(self) -> &'static str {
        match self {
            MfaKind::AssignChoose | MfaKind::Assign => "mfa-assign",
            MfaKind::Resync => "mfa-resync",
            MfaKind::Remove => "mfa-remove",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            MfaKind::AssignChoose | MfaKind::Assign => "Assign MFA device",
            MfaKind::Resync => "Resync MFA device",
            MfaKind::Remove => "Remove MFA device",
        }
    }

    pub fn is(self, name: &str) -> bool {
        matches!(
            (self, name),
            (MfaKind::Assign, "assign") | (MfaKind::Resync, "resync") | (MfaKind::Remove, "remove")
        )
    }
}

#[derive(Template)]
#[template(path = "console/mfa.html")]
pub(crate) struct MfaForm {
    pub l: Layout,
    pub kind: MfaKind,
    pub choose: bool,
    pub user: String,
    pub serial: String,
    pub warning: &'static str,
}

pub(crate) struct OutboxRow {
    pub channel: &'static str,
    pub to: String,
    pub at: String,
    pub code: String,
}

#[derive(Template)]
#[template(path = "console/outbox.html")]
pub(crate) struct Outbox {
    pub l: Layout,
    pub phone: bool,
    pub messages: Vec<OutboxRow>,
}
