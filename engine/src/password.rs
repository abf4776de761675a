//! Password hashes: Argon2id in PHC string form.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};

use crate::error::EngineError;
use crate::profile::PasswordCost;

/// Hash `password` with `salt` (16 random bytes from the engine's RNG).
pub(crate) fn hash(
    password: &str,
    salt: &[u8; 16],
    cost: PasswordCost,
) -> Result<String, EngineError> {
    let params = Params::new(cost.m_cost_kib, cost.t_cost, cost.p_cost, None)
        .map_err(|e| EngineError::validation(format!("password hash parameters: {e}")))?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(salt)
        .map_err(|e| EngineError::validation(format!("password salt: {e}")))?;
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::validation(format!("password hash: {e}")))
}

/// Whether `password` matches the PHC string `phc` (its own parameters are
/// used). A malformed stored hash never matches.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse", &[7; 16], PasswordCost::TESTING).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
