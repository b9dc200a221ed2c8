//! Passwords (argon2id) and access tokens (JWT HS256, 12 h).

use crate::domain::Role;
use crate::error::{CoreError, CoreResult};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an access token is valid.
pub const TOKEN_TTL_SECS: i64 = 12 * 60 * 60;

/// Hashes a password with argon2id (crate defaults). CPU-heavy: call it off the async executor.
pub fn hash_password(password: &str) -> CoreResult<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored PHC hash; any malformed hash is simply "no".
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The claims of a Kavling access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The role at issue time (privileged actions re-read the user from the database).
    pub role: Role,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// The user's token version at issue time; a token whose version is no longer the user's is
    /// revoked. Tokens from before versions existed decode as 0.
    #[serde(default)]
    pub ver: i64,
}

/// Signs and verifies access tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from the shared HS256 secret.
    pub fn new(secret: &[u8]) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Issues a token of token version 0 (a user whose tokens were never revoked).
    pub fn issue(&self, user_id: Uuid, role: Role, now: i64) -> CoreResult<String> {
        self.issue_versioned(user_id, role, 0, now)
    }

    /// Issues a token for a user at their current token version, valid for [`TOKEN_TTL_SECS`] from `now`.
    pub fn issue_versioned(
        &self,
        user_id: Uuid,
        role: Role,
        version: i64,
        now: i64,
    ) -> CoreResult<String> {
        let claims = Claims {
            sub: user_id,
            role,
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            ver: version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CoreError::Internal(format!("token signing failed: {e}")))
    }

    /// Verifies signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> CoreResult<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| CoreError::Unauthorized {
                code: "unauthorized",
                message: "the access token is missing, malformed, forged or expired".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("rahasia123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("rahasia123", &h));
        assert!(!verify_password("rahasia124", &h));
        assert!(!verify_password("rahasia123", "not-a-hash"));
    }

    #[test]
    fn tokens_verify_and_reject_forgery_and_expiry() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let id = Uuid::now_v7();
        let now = chrono::Utc::now().timestamp();
        let t = keys.issue(id, Role::Admin, now).unwrap();
        assert_eq!(keys.verify(&t).unwrap().sub, id);
        let other = TokenKeys::new(b"another-secret-another-secret-xx");
        assert!(other.verify(&t).is_err());
        let old = keys
            .issue(id, Role::Admin, now - TOKEN_TTL_SECS - 10)
            .unwrap();
        assert!(keys.verify(&old).is_err());
        assert!(keys.verify("garbage").is_err());
    }

    #[test]
    fn tokens_carry_their_version_and_old_tokens_decode_as_version_0() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let id = Uuid::now_v7();
        let now = chrono::Utc::now().timestamp();
        let t = keys.issue_versioned(id, Role::Buyer, 7, now).unwrap();
        assert_eq!(keys.verify(&t).unwrap().ver, 7);
        // A token signed before `ver` existed.
        #[derive(Serialize)]
        struct OldClaims {
            sub: Uuid,
            role: Role,
            iat: i64,
            exp: i64,
        }
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &OldClaims {
                sub: id,
                role: Role::Buyer,
                iat: now,
                exp: now + 60,
            },
            &keys.encoding,
        )
        .unwrap();
        assert_eq!(keys.verify(&old).unwrap().ver, 0);
    }
}
