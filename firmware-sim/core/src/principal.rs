//! Who acts, and through which door: the nouns of the seed page that the
//! engine, its API face and the harness share.

use std::fmt;

use serde::Serialize;

/// Who acts, or whose device it is: the account's root user or an IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// The AWS account root user.
    Root,
    /// An IAM user, by name.
    User(String),
}

impl Principal {
    /// An IAM user.
    #[must_use]
    pub fn user(name: &str) -> Principal {
        Principal::User(name.to_string())
    }

    /// From a scenario or command-line name: `root` is the root user,
    /// anything else an IAM user of that name.
    #[must_use]
    pub fn from_name(name: &str) -> Principal {
        if name == "root" {
            Principal::Root
        } else {
            Principal::user(name)
        }
    }
}

impl fmt::Display for Principal {
    /// `root` or the user name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Root => f.write_str("root"),
            Principal::User(n) => f.write_str(n),
        }
    }
}

/// The door a request came through. The seed lets the root user enable
/// hardware MFA from the console only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The AWS Management Console.
    Console,
    /// The AWS CLI or the IAM API.
    Api,
}
