//! Credentials: long-term access keys (from the bootstrap file) and STS
//! session credentials.
//!
//! Session credentials are stateless, as AWS's are: the session token is
//! the session itself (access key id, secret, principal, expiry, MFA flag)
//! sealed with XChaCha20-Poly1305 under the server's session key. A server
//! restarted with the same key (`fobsim serve` keeps it in a file next to
//! the database) accepts the sessions it issued before; nothing about
//! sessions is stored.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::{BASE32_NOPAD, BASE64, BASE64URL_NOPAD};
use fobsim_core::Timestamp;
use parking_lot::Mutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;
use zeroize::Zeroizing;

use crate::types::StorageKey as _;
use fobsim_aws::AwsError;
use fobsim_aws::xml::SessionCredentials;
use fobsim_core::Principal;

const TOKEN_AAD: &[u8] = b"fobsim-sts-session-v1";

/// Why an access key cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Access key ids are 16–128 characters of `[A-Z0-9]`.
    #[error("access key id {id:?} must be 16-128 characters of [A-Z0-9]")]
    BadAccessKeyId {
        /// The id (cut).
        id: String,
    },
    /// Secrets are 16–128 printable ASCII characters.
    #[error("the secret access key of {id} must be 16-128 printable ASCII characters")]
    BadSecret {
        /// Whose secret.
        id: String,
    },
    /// The same id twice.
    #[error("access key id {id} is declared twice")]
    Duplicate {
        /// The id.
        id: String,
    },
}

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A long-term access key (`aws:MultiFactorAuthPresent` is absent).
    LongTerm,
    /// STS session credentials.
    Session {
        /// Obtained with an MFA code (`aws:MultiFactorAuthPresent`).
        mfa: bool,
        /// When they expire.
        expires: Timestamp,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// How.
    pub kind: CallerKind,
    /// The access key id used.
    pub access_key_id: String,
}

impl Caller {
    /// `aws:MultiFactorAuthPresent`: absent for long-term keys, `true` only
    /// for sessions obtained with MFA.
    #[must_use]
    pub fn mfa_present(&self) -> Option<bool> {
        match self.kind {
            CallerKind::LongTerm => None,
            CallerKind::Session { mfa, .. } => Some(mfa),
        }
    }
}

/// A resolved access key: the secret to check the signature with, and
/// the caller it stands for.
pub struct Resolved {
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// The caller.
    pub caller: Caller,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

struct LongTermKey {
    secret: Zeroizing<String>,
    principal: Principal,
}

/// All keys a server accepts.
pub struct KeyRing {
    long_term: HashMap<String, LongTermKey>,
    cipher: XChaCha20Poly1305,
    rng: Mutex<ChaCha20Rng>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("access_keys", &self.long_term.len())
            .finish_non_exhaustive()
    }
}

/// `InvalidClientTokenId` (403).
#[must_use]
pub fn invalid_token() -> AwsError {
    AwsError::sender(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
}

impl KeyRing {
    /// A key ring sealing sessions under `session_key`. `rng_seed` makes
    /// issued credentials deterministic (tests); `None` draws from the OS.
    #[must_use]
    pub fn new(session_key: &[u8; 32], rng_seed: Option<u64>) -> Self {
        let rng = crate::engine::rng_from(rng_seed);
        KeyRing {
            long_term: HashMap::new(),
            cipher: XChaCha20Poly1305::new(session_key.into()),
            rng: Mutex::new(rng),
        }
    }

    /// Register a long-term access key of `principal`.
    ///
    /// # Errors
    /// [`CredentialError`] for a malformed id or secret, or a duplicate id.
    pub fn add_access_key(
        &mut self,
        id: &str,
        secret: &str,
        principal: Principal,
    ) -> Result<(), CredentialError> {
        if !(16..=128).contains(&id.len())
            || !id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(CredentialError::BadAccessKeyId {
                id: id.chars().take(32).collect(),
            });
        }
        if !(16..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CredentialError::BadSecret { id: id.to_string() });
        }
        if self.long_term.contains_key(id) {
            return Err(CredentialError::Duplicate { id: id.to_string() });
        }
        self.long_term.insert(
            id.to_string(),
            LongTermKey {
                secret: Zeroizing::new(secret.to_string()),
                principal,
            },
        );
        Ok(())
    }

    /// Number of long-term keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.long_term.len()
    }

    /// Whether no long-term key is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.long_term.is_empty()
    }

    /// Find the secret and caller of an access key id (with the
    /// `X-Amz-Security-Token` for session credentials).
    ///
    /// # Errors
    /// `InvalidClientTokenId` (403) for an unknown key, a token that does
    /// not open or belongs to another key, or a token with a long-term
    /// key; `ExpiredToken` (403) for an expired session.
    pub fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: Timestamp,
    ) -> Result<Resolved, AwsError> {
        if let Some(k) = self.long_term.get(access_key_id) {
            if session_token.is_some() {
                return Err(invalid_token());
            }
            return Ok(Resolved {
                secret: k.secret.clone(),
                caller: Caller {
                    principal: k.principal.clone(),
                    kind: CallerKind::LongTerm,
                    access_key_id: access_key_id.to_string(),
                },
            });
        }
        let token = session_token.ok_or_else(invalid_token)?;
        let s = self.open(token).ok_or_else(invalid_token)?;
        if s.access_key_id != access_key_id {
            return Err(invalid_token());
        }
        if s.expires <= now {
            return Err(AwsError::sender(
                403,
                "ExpiredToken",
                "The security token included in the request is expired",
            ));
        }
        Ok(Resolved {
            secret: s.secret,
            caller: Caller {
                principal: s.principal,
                kind: CallerKind::Session {
                    mfa: s.mfa,
                    expires: s.expires,
                },
                access_key_id: s.access_key_id,
            },
        })
    }

    /// Issue session credentials for `principal`, valid for `duration_ms`
    /// from `now`, with the MFA flag.
    #[must_use]
    pub fn issue_session(
        &self,
        principal: &Principal,
        mfa: bool,
        now: Timestamp,
        duration_ms: u64,
    ) -> SessionCredentials {
        let (id_bytes, secret_bytes, nonce) = {
            let mut rng = self.rng.lock();
            let mut id = [0u8; 10];
            let mut secret = Zeroizing::new([0u8; 30]);
            let mut nonce = [0u8; 24];
            rng.fill_bytes(&mut id);
            rng.fill_bytes(secret.as_mut());
            rng.fill_bytes(&mut nonce);
            (id, secret, nonce)
        };
        let access_key_id = format!("ASIA{}", BASE32_NOPAD.encode(&id_bytes));
        let secret = Zeroizing::new(BASE64.encode(secret_bytes.as_ref()));
        let expires = now.add_millis(i64::try_from(duration_ms).unwrap_or(i64::MAX));
        let plain = Zeroizing::new(format!(
            "1\n{access_key_id}\n{}\n{}\n{}\n{}",
            secret.as_str(),
            principal.storage_key(),
            expires.as_millis(),
            u8::from(mfa)
        ));
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: TOKEN_AAD,
                },
            )
            .unwrap_or_default();
        let mut tok = Vec::with_capacity(24 + sealed.len());
        tok.extend_from_slice(&nonce);
        tok.extend_from_slice(&sealed);
        SessionCredentials {
            access_key_id,
            secret_access_key: secret.to_string(),
            session_token: BASE64URL_NOPAD.encode(&tok),
            expiration: expires,
        }
    }

    fn open(&self, token: &str) -> Option<OpenSession> {
        if token.len() > 4096 {
            return None;
        }
        let raw = BASE64URL_NOPAD.decode(token.as_bytes()).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: TOKEN_AAD,
                    },
                )
                .ok()?,
        );
        let text = std::str::from_utf8(&plain).ok()?;
        let mut f = text.split('\n');
        let (Some("1"), Some(id), Some(secret), Some(who), Some(exp), Some(mfa), None) = (
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
        ) else {
            return None;
        };
        Some(OpenSession {
            access_key_id: id.to_string(),
            secret: Zeroizing::new(secret.to_string()),
            principal: crate::types::principal_from_key(who),
            expires: Timestamp::from_millis(exp.parse().ok()?),
            mfa: mfa == "1",
        })
    }
}

struct OpenSession {
    access_key_id: String,
    secret: Zeroizing<String>,
    principal: Principal,
    expires: Timestamp,
    mfa: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const T: Timestamp = Timestamp::from_secs(1_767_225_600);

    fn ring() -> KeyRing {
        let mut r = KeyRing::new(&KEY, Some(1));
        r.add_access_key(
            "AKIAALICE0000000001",
            "alice-secret-0123456789",
            Principal::user("alice"),
        )
        .unwrap();
        r
    }

    #[test]
    fn long_term_keys() {
        let r = ring();
        let got = r.resolve("AKIAALICE0000000001", None, T).unwrap();
        assert_eq!(got.caller.principal, Principal::user("alice"));
        assert_eq!(got.caller.mfa_present(), None);
        assert_eq!(got.secret.as_str(), "alice-secret-0123456789");
        assert_eq!(
            r.resolve("AKIANOBODY000000001", None, T).unwrap_err().code,
            "InvalidClientTokenId"
        );
        assert_eq!(
            r.resolve("AKIAALICE0000000001", Some("x"), T)
                .unwrap_err()
                .code,
            "InvalidClientTokenId"
        );
        let mut r = ring();
        assert!(matches!(
            r.add_access_key("short", "alice-secret-0123456789", Principal::Root),
            Err(CredentialError::BadAccessKeyId { .. })
        ));
        assert!(matches!(
            r.add_access_key("AKIAALICE0000000002", "short", Principal::Root),
            Err(CredentialError::BadSecret { .. })
        ));
        assert!(matches!(
            r.add_access_key(
                "AKIAALICE0000000001",
                "alice-secret-0123456789",
                Principal::Root
            ),
            Err(CredentialError::Duplicate { .. })
        ));
    }

    #[test]
    fn sessions_carry_principal_mfa_and_expiry() {
        let r = ring();
        let s = r.issue_session(&Principal::user("alice"), true, T, 3_600_000);
        assert!(s.access_key_id.starts_with("ASIA") && s.access_key_id.len() == 20);
        let got = r
            .resolve(&s.access_key_id, Some(&s.session_token), T)
            .unwrap();
        assert_eq!(got.caller.mfa_present(), Some(true));
        assert_eq!(got.secret.as_str(), s.secret_access_key);
        let no_mfa = r.issue_session(&Principal::Root, false, T, 900_000);
        let got = r
            .resolve(&no_mfa.access_key_id, Some(&no_mfa.session_token), T)
            .unwrap();
        assert_eq!(
            (got.caller.mfa_present(), got.caller.principal),
            (Some(false), Principal::Root)
        );
        // Expired exactly at the expiry.
        let e = r
            .resolve(
                &s.access_key_id,
                Some(&s.session_token),
                T.add_millis(3_600_000),
            )
            .unwrap_err();
        assert_eq!((e.status, e.code), (403, "ExpiredToken"));
        // The token of another session, a tampered token, no token.
        assert_eq!(
            r.resolve(&s.access_key_id, Some(&no_mfa.session_token), T)
                .unwrap_err()
                .code,
            "InvalidClientTokenId"
        );
        let mut t = s.session_token.clone().into_bytes();
        t[30] = if t[30] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert_eq!(
            r.resolve(&s.access_key_id, Some(&t), T).unwrap_err().code,
            "InvalidClientTokenId"
        );
        assert_eq!(
            r.resolve(&s.access_key_id, None, T).unwrap_err().code,
            "InvalidClientTokenId"
        );
        assert_eq!(
            r.resolve(&s.access_key_id, Some("!!"), T).unwrap_err().code,
            "InvalidClientTokenId"
        );
        // Another server key cannot open it; the same key (a restart) can.
        let other = KeyRing::new(&[8; 32], None);
        assert!(
            other
                .resolve(&s.access_key_id, Some(&s.session_token), T)
                .is_err()
        );
        let again = KeyRing::new(&KEY, None);
        assert!(
            again
                .resolve(&s.access_key_id, Some(&s.session_token), T)
                .is_ok()
        );
    }
}
