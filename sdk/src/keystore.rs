//! An encrypted keystore file for one secp256k1 secret: a sender's wallet key or a
//! watcher's attestation key.
//!
//! The file is JSON:
//!
//! ```json
//! {
//!   "version": 1,
//!   "address": "0x…",            // the key's EVM (keccak) address, public, for display
//!   "qtum_hash160": "0x…",       // hash160 of its compressed public key (its Qtum address)
//!   "kdf": { "name": "scrypt", "log_n": 15, "r": 8, "p": 1, "salt": "…32 hex…" },
//!   "cipher": { "name": "aes-256-gcm", "nonce": "…24 hex…" },
//!   "ciphertext": "…96 hex…"     // the 32-byte secret, then the 16-byte GCM tag
//! }
//! ```
//!
//! The key is `scrypt(password, salt, log_n, r, p)` (32 bytes) and the secret is sealed
//! with AES-256-GCM under a fresh 12-byte nonce. The associated data is
//! `"springmail-keystore/v1" ‖ address ‖ qtum_hash160 ‖ log_n ‖ r (u32 BE) ‖ p (u32 BE)`, so
//! editing an address or weakening the KDF parameters in the file makes decryption fail instead of
//! silently succeeding. A wrong password and a tampered file are the same error: GCM
//! cannot tell them apart, and [`KeystoreError::WrongPassword`] says so.
//!
//! The password comes from the environment variable [`PASSWORD_ENV`]
//! (`SPRINGMAIL_PASSWORD`) or from a prompt (the CLI's job). Nothing here prints or logs
//! the secret or the password; [`KeystoreFile`]'s `Debug` shows the address only.
//!
//! ```
//! use springmail_sdk::keystore::{KdfParams, KeystoreFile, KeystoreError};
//! use springmail_sdk::keys::ClaimSecret;
//! let secret = ClaimSecret::random();
//! // Tests use cheap KDF parameters; real keystores use KdfParams::default().
//! let file = KeystoreFile::encrypt(&secret, b"correct horse", KdfParams::INSECURE_FAST).unwrap();
//! let json = file.to_json();
//! let back = KeystoreFile::from_json(&json).unwrap();
//! assert_eq!(back.decrypt(b"correct horse").unwrap(), secret);
//! assert!(matches!(back.decrypt(b"wrong"), Err(KeystoreError::WrongPassword)));
//! ```

use std::path::Path;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use alloy::primitives::Address;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::ClaimSecret;

/// The file format version this software writes and reads.
pub const KEYSTORE_VERSION: u32 = 1;
/// The environment variable that holds the keystore password.
pub const PASSWORD_ENV: &str = crate::env::PASSWORD;
/// Domain-separation prefix of the GCM associated data.
const AAD_TAG: &[u8] = b"springmail-keystore/v1";
/// Keystore files larger than this are refused before parsing.
pub const MAX_KEYSTORE_BYTES: u64 = 64 * 1024;
/// Largest accepted scrypt cost (2^22 × 128 × r bytes is already 4 GiB at r = 8).
const MAX_LOG_N: u8 = 22;

/// Why a keystore could not be made, read or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The password did not open the keystore (or the file was altered).
    #[error("wrong password for the keystore (or the file was altered)")]
    WrongPassword,
    /// The file could not be read or written.
    #[error("cannot {action} keystore {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A keystore already exists where a new one was to be written.
    #[error("a keystore already exists at {path}; refusing to overwrite it")]
    Exists {
        /// The file.
        path: String,
    },
    /// The file is not a keystore this software reads.
    #[error("the keystore file is invalid: {field}: {reason}")]
    Invalid {
        /// The JSON field at fault (`version`, `kdf.log_n`, `ciphertext`, …).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The password is empty.
    #[error("the keystore password is empty")]
    EmptyPassword,
}

/// scrypt cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// log2 of the CPU/memory cost N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// Cheap parameters for tests and the demo's throwaway keys. Never for real keys.
    pub const INSECURE_FAST: KdfParams = KdfParams {
        log_n: 4,
        r: 8,
        p: 1,
    };
}

impl Default for KdfParams {
    /// N = 2^15, r = 8, p = 1: 32 MiB and a fraction of a second per unlock.
    fn default() -> Self {
        KdfParams {
            log_n: 15,
            r: 8,
            p: 1,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KdfJson {
    name: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct CipherJson {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct FileJson {
    version: u32,
    address: String,
    qtum_hash160: String,
    kdf: KdfJson,
    cipher: CipherJson,
    ciphertext: String,
}

/// A parsed keystore: public fields and the sealed secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoreFile {
    address: Address,
    qtum_hash160: Address,
    params: KdfParams,
    salt: [u8; 32],
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for KeystoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreFile")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn derive_key(
    password: &[u8],
    salt: &[u8; 32],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let p = scrypt::Params::new(params.log_n, params.r, params.p, 32).map_err(|e| {
        KeystoreError::Invalid {
            field: "kdf",
            reason: e.to_string(),
        }
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &p, &mut key[..]).map_err(|e| KeystoreError::Invalid {
        field: "kdf",
        reason: e.to_string(),
    })?;
    Ok(key)
}

fn aad(address: Address, qtum_hash160: Address, params: KdfParams) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_TAG.len() + 40 + 9);
    out.extend_from_slice(AAD_TAG);
    out.extend_from_slice(address.as_slice());
    out.extend_from_slice(qtum_hash160.as_slice());
    out.push(params.log_n);
    out.extend_from_slice(&params.r.to_be_bytes());
    out.extend_from_slice(&params.p.to_be_bytes());
    out
}

fn check_params(params: KdfParams) -> Result<(), KeystoreError> {
    if params.log_n == 0 || params.log_n > MAX_LOG_N {
        return Err(KeystoreError::Invalid {
            field: "kdf.log_n",
            reason: format!("{} is not in 1..={MAX_LOG_N}", params.log_n),
        });
    }
    if params.r == 0 || params.r > 32 {
        return Err(KeystoreError::Invalid {
            field: "kdf.r",
            reason: format!("{} is not in 1..=32", params.r),
        });
    }
    if params.p == 0 || params.p > 16 {
        return Err(KeystoreError::Invalid {
            field: "kdf.p",
            reason: format!("{} is not in 1..=16", params.p),
        });
    }
    Ok(())
}

fn hex_field<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], KeystoreError> {
    let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|e| {
        KeystoreError::Invalid {
            field,
            reason: e.to_string(),
        }
    })?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeystoreError::Invalid {
            field,
            reason: format!("expected {N} bytes, got {}", b.len()),
        })
}

impl KeystoreFile {
    /// Seals `secret` under `password` with fresh random salt and nonce.
    pub fn encrypt(
        secret: &ClaimSecret,
        password: &[u8],
        params: KdfParams,
    ) -> Result<Self, KeystoreError> {
        if password.is_empty() {
            return Err(KeystoreError::EmptyPassword);
        }
        check_params(params)?;
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let address = secret.address();
        let qtum_hash160 = crate::qtum::qtum_sender_of_secret(secret);
        let key = derive_key(password, &salt, params)?;
        let cipher = Aes256Gcm::new_from_slice(&key[..]).expect("32-byte key");
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_bytes(),
                    aad: &aad(address, qtum_hash160, params),
                },
            )
            .map_err(|_| KeystoreError::Invalid {
                field: "ciphertext",
                reason: "encryption failed".into(),
            })?;
        Ok(KeystoreFile {
            address,
            qtum_hash160,
            params,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// Opens the keystore.
    pub fn decrypt(&self, password: &[u8]) -> Result<ClaimSecret, KeystoreError> {
        let key = derive_key(password, &self.salt, self.params)?;
        let cipher = Aes256Gcm::new_from_slice(&key[..]).expect("32-byte key");
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&self.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &aad(self.address, self.qtum_hash160, self.params),
                    },
                )
                .map_err(|_| KeystoreError::WrongPassword)?,
        );
        let bytes: [u8; 32] = plain[..].try_into().map_err(|_| KeystoreError::Invalid {
            field: "ciphertext",
            reason: format!("holds {} bytes, expected 32", plain.len()),
        })?;
        let bytes = Zeroizing::new(bytes);
        let secret = ClaimSecret::from_bytes(*bytes).map_err(|_| KeystoreError::Invalid {
            field: "ciphertext",
            reason: "the sealed key is not a valid secp256k1 secret".into(),
        })?;
        if secret.address() != self.address
            || crate::qtum::qtum_sender_of_secret(&secret) != self.qtum_hash160
        {
            return Err(KeystoreError::Invalid {
                field: "address",
                reason: "does not match the sealed key".into(),
            });
        }
        Ok(secret)
    }

    /// The key's EVM (keccak) address, readable without the password.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The key's Qtum identity, `hash160(compressed pubkey)`: its base58 address on a
    /// Qtum chain ([`crate::qtum::encode_address`]), readable without the password.
    pub fn qtum_hash160(&self) -> Address {
        self.qtum_hash160
    }

    /// The scrypt parameters.
    pub fn kdf_params(&self) -> KdfParams {
        self.params
    }

    /// The JSON text of the file.
    pub fn to_json(&self) -> String {
        let file = FileJson {
            version: KEYSTORE_VERSION,
            address: self.address.to_checksum(None),
            qtum_hash160: self.qtum_hash160.to_checksum(None),
            kdf: KdfJson {
                name: "scrypt".into(),
                log_n: self.params.log_n,
                r: self.params.r,
                p: self.params.p,
                salt: hex::encode(self.salt),
            },
            cipher: CipherJson {
                name: "aes-256-gcm".into(),
                nonce: hex::encode(self.nonce),
            },
            ciphertext: hex::encode(&self.ciphertext),
        };
        let mut text = serde_json::to_string_pretty(&file).expect("plain data serializes");
        text.push('\n');
        text
    }

    /// Parses the JSON text of a keystore, checking every field.
    pub fn from_json(text: &str) -> Result<Self, KeystoreError> {
        let file: FileJson = serde_json::from_str(text).map_err(|e| KeystoreError::Invalid {
            field: "json",
            reason: e.to_string(),
        })?;
        if file.version != KEYSTORE_VERSION {
            return Err(KeystoreError::Invalid {
                field: "version",
                reason: format!(
                    "{} is not supported; this software reads version {KEYSTORE_VERSION}",
                    file.version
                ),
            });
        }
        if file.kdf.name != "scrypt" {
            return Err(KeystoreError::Invalid {
                field: "kdf.name",
                reason: format!("{:?} is not scrypt", file.kdf.name),
            });
        }
        if file.cipher.name != "aes-256-gcm" {
            return Err(KeystoreError::Invalid {
                field: "cipher.name",
                reason: format!("{:?} is not aes-256-gcm", file.cipher.name),
            });
        }
        let params = KdfParams {
            log_n: file.kdf.log_n,
            r: file.kdf.r,
            p: file.kdf.p,
        };
        check_params(params)?;
        let address =
            crate::qtum::parse_hex_address(&file.address).map_err(|e| KeystoreError::Invalid {
                field: "address",
                reason: e.to_string(),
            })?;
        let qtum_hash160 = crate::qtum::parse_hex_address(&file.qtum_hash160).map_err(|e| {
            KeystoreError::Invalid {
                field: "qtum_hash160",
                reason: e.to_string(),
            }
        })?;
        let ciphertext = hex::decode(&file.ciphertext).map_err(|e| KeystoreError::Invalid {
            field: "ciphertext",
            reason: e.to_string(),
        })?;
        if ciphertext.len() != 48 {
            return Err(KeystoreError::Invalid {
                field: "ciphertext",
                reason: format!("expected 48 bytes (key and tag), got {}", ciphertext.len()),
            });
        }
        Ok(KeystoreFile {
            address,
            qtum_hash160,
            params,
            salt: hex_field("kdf.salt", &file.kdf.salt)?,
            nonce: hex_field("cipher.nonce", &file.cipher.nonce)?,
            ciphertext,
        })
    }

    /// Reads and parses a keystore file.
    pub fn load(path: &Path) -> Result<Self, KeystoreError> {
        let io = |source| KeystoreError::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_KEYSTORE_BYTES {
            return Err(KeystoreError::Invalid {
                field: "json",
                reason: format!(
                    "the file is {} bytes; a keystore is under {MAX_KEYSTORE_BYTES}",
                    meta.len()
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_json(&text)
    }

    /// Writes the keystore to a new file (readable by the owner only on Unix), creating
    /// parent directories. Refuses to overwrite an existing file.
    pub fn save_new(&self, path: &Path) -> Result<(), KeystoreError> {
        use std::io::Write;
        let io = |source| KeystoreError::Io {
            action: "write",
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeystoreError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                io(e)
            }
        })?;
        f.write_all(self.to_json().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// The password from [`PASSWORD_ENV`], when it is set and not empty.
pub fn password_from_env() -> Option<Zeroizing<String>> {
    crate::env::var(PASSWORD_ENV).map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> (ClaimSecret, KeystoreFile) {
        let secret = ClaimSecret::from_bytes([7; 32]).unwrap();
        let file = KeystoreFile::encrypt(&secret, b"pw", KdfParams::INSECURE_FAST).unwrap();
        (secret, file)
    }

    #[test]
    fn round_trips_through_json_and_disk() {
        let (secret, file) = sealed();
        let back = KeystoreFile::from_json(&file.to_json()).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.decrypt(b"pw").unwrap(), secret);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/wallet.json");
        file.save_new(&path).unwrap();
        assert_eq!(
            KeystoreFile::load(&path).unwrap().decrypt(b"pw").unwrap(),
            secret
        );
        assert!(matches!(
            file.save_new(&path),
            Err(KeystoreError::Exists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "keystore must not be readable by others: {mode:o}"
            );
        }
    }

    #[test]
    fn wrong_password_is_refused() {
        let (_, file) = sealed();
        assert!(matches!(
            file.decrypt(b"pW"),
            Err(KeystoreError::WrongPassword)
        ));
        assert!(matches!(
            KeystoreFile::encrypt(&ClaimSecret::random(), b"", KdfParams::INSECURE_FAST),
            Err(KeystoreError::EmptyPassword)
        ));
    }

    #[test]
    fn the_file_never_holds_the_secret_in_clear() {
        let (secret, file) = sealed();
        let json = file.to_json();
        assert!(!json.contains(&hex::encode(secret.expose_bytes())));
        assert!(!format!("{file:?}").contains("0707"));
    }

    #[test]
    fn tampering_with_public_fields_fails_to_open() {
        let (_, file) = sealed();
        let json: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        // A weaker KDF claimed in the file.
        let mut weaker = json.clone();
        weaker["kdf"]["log_n"] = 3.into();
        let weaker = KeystoreFile::from_json(&weaker.to_string()).unwrap();
        assert!(matches!(
            weaker.decrypt(b"pw"),
            Err(KeystoreError::WrongPassword)
        ));
        // Another address.
        let mut other = json.clone();
        other["address"] = Address::repeat_byte(1).to_checksum(None).into();
        let other = KeystoreFile::from_json(&other.to_string()).unwrap();
        assert!(matches!(
            other.decrypt(b"pw"),
            Err(KeystoreError::WrongPassword)
        ));
        // Another Qtum address.
        let mut other = json.clone();
        other["qtum_hash160"] = Address::repeat_byte(2).to_checksum(None).into();
        let other = KeystoreFile::from_json(&other.to_string()).unwrap();
        assert!(matches!(
            other.decrypt(b"pw"),
            Err(KeystoreError::WrongPassword)
        ));
    }

    #[test]
    fn malformed_files_name_the_field() {
        let (_, file) = sealed();
        let json: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        let cases: [(&str, serde_json::Value, &str); 6] = [
            ("/version", 2.into(), "version"),
            ("/kdf/name", "pbkdf2".into(), "kdf.name"),
            ("/kdf/log_n", 40.into(), "kdf.log_n"),
            ("/kdf/salt", "abcd".into(), "kdf.salt"),
            ("/cipher/nonce", "zz".into(), "cipher.nonce"),
            ("/ciphertext", "00".into(), "ciphertext"),
        ];
        for (pointer, value, field) in cases {
            let mut bad = json.clone();
            *bad.pointer_mut(pointer).unwrap() = value;
            match KeystoreFile::from_json(&bad.to_string()) {
                Err(KeystoreError::Invalid { field: got, .. }) => {
                    assert_eq!(got, field, "{pointer}")
                }
                other => panic!("{pointer}: {other:?}"),
            }
        }
        assert!(matches!(
            KeystoreFile::from_json("{"),
            Err(KeystoreError::Invalid { field: "json", .. })
        ));
    }
}
