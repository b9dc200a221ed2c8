//! Personal data at rest (UU PDP): AES-256-GCM for NIK/NPWP, a keyed hash for uniqueness and lookup,
//! and masking for staff who may see only part of a value.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{CoreError, CoreResult};

type HmacSha256 = Hmac<Sha256>;

/// Encrypts, decrypts and hashes personal identifiers with keys derived from `KAVLING_PII_KEY`.
#[derive(Clone)]
pub struct PiiCipher {
    cipher: Aes256Gcm,
    hash_key: [u8; 32],
}

impl std::fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiCipher(..)")
    }
}

/// HMAC-SHA256 of `data` under `key` (HMAC takes keys of any length, so this cannot fail in practice).
fn hmac_sha256(key: &[u8], data: &[u8]) -> CoreResult<[u8; 32]> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .map_err(|_| CoreError::Internal("HMAC key rejected".into()))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

impl PiiCipher {
    /// A cipher from the 32-byte master key.
    pub fn new(master: &[u8; 32]) -> CoreResult<Self> {
        // HMAC as a KDF: separate keys for encryption and hashing from one configured secret.
        let enc_key = hmac_sha256(master, b"kavling/pii/aes-256-gcm/v1")?;
        let hash_key = hmac_sha256(master, b"kavling/pii/hmac-sha256/v1")?;
        Ok(PiiCipher {
            cipher: Aes256Gcm::new(&enc_key.into()),
            hash_key,
        })
    }

    /// Encrypts a value: base64 of a random 96-bit nonce followed by the ciphertext and tag.
    pub fn encrypt(&self, plain: &str) -> CoreResult<String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)
            .map_err(|e| CoreError::Internal(format!("no randomness: {e}")))?;
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .map_err(|_| CoreError::Internal("encryption failed".into()))?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    /// Decrypts what [`PiiCipher::encrypt`] produced.
    pub fn decrypt(&self, stored: &str) -> CoreResult<String> {
        let raw = B64
            .decode(stored)
            .map_err(|_| CoreError::Internal("stored personal data is not base64".into()))?;
        if raw.len() < 12 + 16 {
            return Err(CoreError::Internal(
                "stored personal data is truncated".into(),
            ));
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| CoreError::Internal("stored personal data is truncated".into()))?;
        let plain = self.cipher.decrypt(&Nonce::from(nonce), ct).map_err(|_| {
            CoreError::Internal("personal data does not decrypt with this KAVLING_PII_KEY".into())
        })?;
        String::from_utf8(plain)
            .map_err(|_| CoreError::Internal("personal data is not UTF-8".into()))
    }

    /// A keyed, deterministic hash (hex) for unique indexes and lookups without the clear value.
    pub fn keyed_hash(&self, value: &str) -> CoreResult<String> {
        Ok(hex(&hmac_sha256(&self.hash_key, value.as_bytes())?))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Masks the middle of an identifier or phone number: `3201****0001`, `0812****890`.
pub fn mask_middle(value: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= keep_start + keep_end {
        return "*".repeat(chars.len());
    }
    let start: String = chars[..keep_start].iter().collect();
    let end: String = chars[chars.len() - keep_end..].iter().collect();
    format!("{start}****{end}")
}

/// Masks a name to its first two letters: `Bu***`.
pub fn mask_name(name: &str) -> String {
    let start: String = name.chars().take(2).collect();
    format!("{start}***")
}

/// Masks an email's local part: `bu***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_name(local)),
        None => mask_name(email),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypts_with_fresh_nonces_and_hashes_deterministically() {
        let c = PiiCipher::new(&[7u8; 32]).unwrap();
        let a = c.encrypt("3201011505900001").unwrap();
        let b = c.encrypt("3201011505900001").unwrap();
        assert_ne!(a, b);
        assert_eq!(c.decrypt(&a).unwrap(), "3201011505900001");
        let other = PiiCipher::new(&[8u8; 32]).unwrap();
        assert_eq!(c.keyed_hash("x").unwrap(), c.keyed_hash("x").unwrap());
        assert_ne!(c.keyed_hash("x").unwrap(), other.keyed_hash("x").unwrap());
        assert!(other.decrypt(&a).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_middle("081234567890", 4, 3), "0812****890");
        assert_eq!(mask_name("Budi Santoso"), "Bu***");
        assert_eq!(mask_email("budi@example.com"), "bu***@example.com");
    }
}
