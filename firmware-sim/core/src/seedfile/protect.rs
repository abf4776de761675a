//! Encrypted PSKC values (RFC 6030 §6): what unlocks them ([`Protection`]:
//! a pre-shared transport key or a password), the algorithms, and the key
//! and password files they are kept in.
//!
//! Read: `EncryptedValue` under AES-128/192/256-CBC (the IV prepended, PKCS#7
//! padding, §6.1 and §6.4) or the AES key wraps of §6.1 (RFC 3394 KW-AES and
//! the RFC 5649 key wrap with padding that §6.1 recommends), the key either
//! pre-shared (§6.1) or derived from a password with PBKDF2 (§6.2); the
//! `ValueMAC` (HMAC-SHA1, its key itself encrypted under the same key,
//! §6.1.1) checked before a value is decrypted.
//!
//! Write: AES-CBC with a random IV per value, a random MAC key per file and a
//! `ValueMAC` on every encrypted value; under a password, PBKDF2-HMAC-SHA1
//! with a random salt per file and an AES-128 key.
//!
//! The crypto is RustCrypto's (`aes`, `cbc`, `aes-kw`, `hmac`, `sha1`,
//! `pbkdf2`); this module only names algorithms and moves bytes.

use std::path::{Path, PathBuf};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use hmac::Mac as _;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// `xenc` namespace (XML Encryption).
pub(crate) const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
/// `xenc11` namespace (XML Encryption 1.1).
pub(crate) const XENC11_NS: &str = "http://www.w3.org/2009/xmlenc11#";
/// `ds` namespace (XML Signature).
pub(crate) const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `pkcs5` namespace of RFC 6030 Figure 7.
pub(crate) const PKCS5_NS: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";

/// AES-128-CBC (RFC 6030 §6.1).
pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
/// AES-192-CBC (RFC 6030 §6.1).
pub const AES192_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
/// AES-256-CBC (RFC 6030 §6.1).
pub const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
/// KW-AES128, the RFC 3394 key wrap (RFC 6030 §6.1).
pub const KW_AES128: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes128";
/// KW-AES192 (RFC 6030 §6.1).
pub const KW_AES192: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes192";
/// KW-AES256 (RFC 6030 §6.1).
pub const KW_AES256: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes256";
/// AES-128 key wrap with padding (RFC 5649, recommended by RFC 6030 §6.1
/// for keys that are not a multiple of 8 bytes; URI of XML Encryption 1.1).
pub const KWP_AES128: &str = "http://www.w3.org/2009/xmlenc11#kw-aes-128-pad";
/// AES-192 key wrap with padding (RFC 5649).
pub const KWP_AES192: &str = "http://www.w3.org/2009/xmlenc11#kw-aes-192-pad";
/// AES-256 key wrap with padding (RFC 5649).
pub const KWP_AES256: &str = "http://www.w3.org/2009/xmlenc11#kw-aes-256-pad";
/// HMAC-SHA1, the MAC of `ValueMAC` (RFC 6030 §6.1.1).
pub const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
/// PBKDF2 (RFC 6030 §6.2), as its Figure 7 writes it.
pub const PBKDF2: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";
/// The other spellings of PBKDF2 that files use: RFC 6030 §6.2's text and
/// XML Encryption 1.1's.
const PBKDF2_ALIASES: [&str; 2] = [
    "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5#pbkdf2",
    "http://www.w3.org/2009/xmlenc11#pbkdf2",
];

/// What fobsim reads, for error messages.
pub(crate) const SUPPORTED_CIPHERS: &str =
    "aes128-cbc, aes192-cbc, aes256-cbc, kw-aes128/192/256, kw-aes-128/192/256-pad";

/// PBKDF2 iterations fobsim writes by default.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
/// The most PBKDF2 iterations fobsim derives a key with by default when
/// reading (a file cannot make it spin for hours).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length fobsim writes (bytes).
const SALT_LEN: usize = 16;
/// MAC key length fobsim writes (bytes): HMAC-SHA1's output length.
const MAC_KEY_LEN: usize = 20;
/// AES block (and CBC IV) length.
const BLOCK: usize = 16;

/// A pre-shared transport key: 16, 24 or 32 bytes (AES-128, -192, -256).
/// `Debug` shows only its length and name; the bytes are wiped on drop.
#[derive(Clone)]
pub struct TransportKey {
    bytes: Zeroizing<Vec<u8>>,
    name: String,
}

impl std::fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TransportKey({} bytes, name {:?})",
            self.bytes.len(),
            self.name
        )
    }
}

/// Why a key or password is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 16, 24 or 32 bytes.
    #[error("a transport key is 16, 24 or 32 bytes (32, 48 or 64 hex digits); got {0} bytes")]
    Length(usize),
    /// Not hex.
    #[error("a transport key is written as hex digits")]
    NotHex,
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// Zero PBKDF2 iterations.
    #[error("PBKDF2 needs at least one iteration")]
    Iterations,
}

impl TransportKey {
    /// The name a written file gives the key (`EncryptionKey/KeyName`).
    pub const DEFAULT_NAME: &'static str = "Pre-shared-key";

    /// Wrap raw key bytes.
    ///
    /// # Errors
    /// [`KeyError::Length`] unless 16, 24 or 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<TransportKey, KeyError> {
        let bytes = Zeroizing::new(bytes);
        if ![16, 24, 32].contains(&bytes.len()) {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(TransportKey {
            bytes,
            name: TransportKey::DEFAULT_NAME.to_string(),
        })
    }

    /// Decode hex digits (either case; whitespace ignored).
    ///
    /// # Errors
    /// [`KeyError::NotHex`] or [`KeyError::Length`].
    pub fn from_hex(text: &str) -> Result<TransportKey, KeyError> {
        let clean: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
        let bytes = hex::decode(clean.as_bytes()).map_err(|_| KeyError::NotHex)?;
        TransportKey::new(bytes)
    }

    /// A fresh random AES-128 key.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> TransportKey {
        let mut bytes = Zeroizing::new(vec![0u8; 16]);
        rng.fill_bytes(&mut bytes);
        TransportKey {
            bytes,
            name: TransportKey::DEFAULT_NAME.to_string(),
        }
    }

    /// The same key under another name (the `KeyName` written files carry).
    #[must_use]
    pub fn named(mut self, name: &str) -> TransportKey {
        self.name = name.to_string();
        self
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lower-case hex (what a key file holds). Handle with care.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes.as_slice()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A password that PBKDF2 turns into the key (RFC 6030 §6.2). `Debug`
/// never shows it; it is wiped on drop.
#[derive(Clone)]
pub struct Password {
    text: Zeroizing<String>,
    iterations: u32,
    max_iterations: u32,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("iterations", &self.iterations)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

impl Password {
    /// A password; written files use [`DEFAULT_ITERATIONS`], read files may
    /// ask for up to [`MAX_ITERATIONS`].
    ///
    /// # Errors
    /// [`KeyError::EmptyPassword`].
    pub fn new(text: &str) -> Result<Password, KeyError> {
        if text.is_empty() {
            return Err(KeyError::EmptyPassword);
        }
        Ok(Password {
            text: Zeroizing::new(text.to_string()),
            iterations: DEFAULT_ITERATIONS,
            max_iterations: MAX_ITERATIONS,
        })
    }

    /// The PBKDF2 iterations a written file uses.
    ///
    /// # Errors
    /// [`KeyError::Iterations`] for 0.
    pub fn with_iterations(mut self, iterations: u32) -> Result<Password, KeyError> {
        if iterations == 0 {
            return Err(KeyError::Iterations);
        }
        self.iterations = iterations;
        Ok(self)
    }

    /// The most PBKDF2 iterations a read file may ask for (more is an error).
    #[must_use]
    pub fn with_max_iterations(mut self, max: u32) -> Password {
        self.max_iterations = max;
        self
    }

    pub(crate) fn max_iterations(&self) -> u32 {
        self.max_iterations
    }

    pub(crate) fn derive(&self, salt: &[u8], iterations: u32, len: usize) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(self.text.as_bytes(), salt, iterations, &mut out);
        out
    }
}

/// What encrypts a written PSKC file, or unlocks a read one.
#[derive(Debug, Clone)]
pub enum Protection {
    /// A pre-shared transport key (RFC 6030 §6.1).
    Key(TransportKey),
    /// A password; the key is derived with PBKDF2 (RFC 6030 §6.2).
    Password(Password),
}

impl Protection {
    /// "pre-shared key" or "password", for messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Protection::Key(_) => "pre-shared key",
            Protection::Password(_) => "password",
        }
    }
}

/// An encryption algorithm of `EncryptionMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cipher {
    /// AES-CBC with the IV prepended and PKCS#7 padding; key length.
    Cbc(usize),
    /// RFC 3394 key wrap; key length.
    Kw(usize),
    /// RFC 5649 key wrap with padding; key length.
    Kwp(usize),
}

/// Why a value did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecryptError {
    /// The key is not as long as the algorithm needs.
    KeyLength { need: usize, got: usize },
    /// The ciphertext cannot be one of this algorithm (length).
    Length,
    /// The padding or the key wrap's integrity check failed: a wrong key,
    /// or altered bytes.
    Integrity,
}

impl std::fmt::Display for DecryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecryptError::KeyLength { need, got } => write!(
                f,
                "the algorithm needs a {need}-byte key; the key is {got} bytes"
            ),
            DecryptError::Length => f.write_str("the CipherValue has an impossible length"),
            DecryptError::Integrity => f.write_str("bad padding or failed integrity check"),
        }
    }
}

impl Cipher {
    pub(crate) fn from_uri(uri: &str) -> Option<Cipher> {
        Some(match uri.trim() {
            AES128_CBC => Cipher::Cbc(16),
            AES192_CBC => Cipher::Cbc(24),
            AES256_CBC => Cipher::Cbc(32),
            KW_AES128 => Cipher::Kw(16),
            KW_AES192 => Cipher::Kw(24),
            KW_AES256 => Cipher::Kw(32),
            KWP_AES128 => Cipher::Kwp(16),
            KWP_AES192 => Cipher::Kwp(24),
            KWP_AES256 => Cipher::Kwp(32),
            _ => return None,
        })
    }

    pub(crate) fn uri(self) -> &'static str {
        match self {
            Cipher::Cbc(16) => AES128_CBC,
            Cipher::Cbc(24) => AES192_CBC,
            Cipher::Cbc(_) => AES256_CBC,
            Cipher::Kw(16) => KW_AES128,
            Cipher::Kw(24) => KW_AES192,
            Cipher::Kw(_) => KW_AES256,
            Cipher::Kwp(16) => KWP_AES128,
            Cipher::Kwp(24) => KWP_AES192,
            Cipher::Kwp(_) => KWP_AES256,
        }
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            Cipher::Cbc(n) | Cipher::Kw(n) | Cipher::Kwp(n) => n,
        }
    }

    /// Whether the algorithm checks integrity itself (the key wraps do; CBC
    /// needs a `ValueMAC`).
    pub(crate) fn has_integrity(self) -> bool {
        !matches!(self, Cipher::Cbc(_))
    }

    /// Decrypt `data` (for CBC: IV then ciphertext).
    pub(crate) fn decrypt(
        self,
        key: &[u8],
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if key.len() != self.key_len() {
            return Err(DecryptError::KeyLength {
                need: self.key_len(),
                got: key.len(),
            });
        }
        match self {
            Cipher::Cbc(16) => cbc_decrypt::<aes::Aes128>(key, data),
            Cipher::Cbc(24) => cbc_decrypt::<aes::Aes192>(key, data),
            Cipher::Cbc(_) => cbc_decrypt::<aes::Aes256>(key, data),
            Cipher::Kw(16) => kw_unwrap(&aes_kw::KwAes128::new_from_slice(key), data),
            Cipher::Kw(24) => kw_unwrap(&aes_kw::KwAes192::new_from_slice(key), data),
            Cipher::Kw(_) => kw_unwrap(&aes_kw::KwAes256::new_from_slice(key), data),
            Cipher::Kwp(16) => kwp_unwrap(&aes_kw::KwpAes128::new_from_slice(key), data),
            Cipher::Kwp(24) => kwp_unwrap(&aes_kw::KwpAes192::new_from_slice(key), data),
            Cipher::Kwp(_) => kwp_unwrap(&aes_kw::KwpAes256::new_from_slice(key), data),
        }
    }

    /// Encrypt `plain`: for CBC with a fresh random IV, prepended.
    pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
        self,
        key: &[u8],
        plain: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, DecryptError> {
        if key.len() != self.key_len() {
            return Err(DecryptError::KeyLength {
                need: self.key_len(),
                got: key.len(),
            });
        }
        let mut iv = [0u8; BLOCK];
        rng.fill_bytes(&mut iv);
        match self {
            Cipher::Cbc(16) => Ok(cbc_encrypt::<aes::Aes128>(key, &iv, plain)),
            Cipher::Cbc(24) => Ok(cbc_encrypt::<aes::Aes192>(key, &iv, plain)),
            Cipher::Cbc(_) => Ok(cbc_encrypt::<aes::Aes256>(key, &iv, plain)),
            Cipher::Kw(16) => kw_wrap(&aes_kw::KwAes128::new_from_slice(key), plain),
            Cipher::Kw(24) => kw_wrap(&aes_kw::KwAes192::new_from_slice(key), plain),
            Cipher::Kw(_) => kw_wrap(&aes_kw::KwAes256::new_from_slice(key), plain),
            Cipher::Kwp(16) => kwp_wrap(&aes_kw::KwpAes128::new_from_slice(key), plain),
            Cipher::Kwp(24) => kwp_wrap(&aes_kw::KwpAes192::new_from_slice(key), plain),
            Cipher::Kwp(_) => kwp_wrap(&aes_kw::KwpAes256::new_from_slice(key), plain),
        }
    }
}

fn cbc_decrypt<C>(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError>
where
    C: aes::cipher::BlockCipherDecrypt,
    cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
{
    if data.len() < 2 * BLOCK || !data.len().is_multiple_of(BLOCK) {
        return Err(DecryptError::Length);
    }
    let (iv, body) = data.split_at(BLOCK);
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| DecryptError::Length)?;
    let mut out = Zeroizing::new(vec![0u8; body.len()]);
    let n = dec
        .decrypt_padded_b2b::<Pkcs7>(body, &mut out)
        .map_err(|_| DecryptError::Integrity)?
        .len();
    out.truncate(n);
    Ok(out)
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8; BLOCK], plain: &[u8]) -> Vec<u8>
where
    C: aes::cipher::BlockCipherEncrypt,
    cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
{
    let mut out = vec![0u8; BLOCK + (plain.len() / BLOCK + 1) * BLOCK];
    out[..BLOCK].copy_from_slice(iv);
    let n = match cbc::Encryptor::<C>::new_from_slices(key, iv) {
        Ok(enc) => enc
            .encrypt_padded_b2b::<Pkcs7>(plain, &mut out[BLOCK..])
            .map_or(0, <[u8]>::len),
        Err(_) => 0,
    };
    out.truncate(BLOCK + n);
    out
}

type KwResult<T> = Result<T, aes::cipher::InvalidLength>;

fn kw_unwrap<C>(
    kw: &KwResult<aes_kw::AesKw<C>>,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError>
where
    C: aes::cipher::BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>,
{
    let kw = kw.as_ref().map_err(|_| DecryptError::Length)?;
    if data.len() < 2 * aes_kw::IV_LEN || !data.len().is_multiple_of(aes_kw::IV_LEN) {
        return Err(DecryptError::Length);
    }
    let mut out = Zeroizing::new(vec![0u8; data.len() - aes_kw::IV_LEN]);
    let n = kw
        .unwrap_key(data, &mut out)
        .map_err(|_| DecryptError::Integrity)?
        .len();
    out.truncate(n);
    Ok(out)
}

fn kwp_unwrap<C>(
    kw: &KwResult<aes_kw::AesKwp<C>>,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError>
where
    C: aes::cipher::BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>,
{
    let kw = kw.as_ref().map_err(|_| DecryptError::Length)?;
    if data.len() < 2 * aes_kw::IV_LEN || !data.len().is_multiple_of(aes_kw::IV_LEN) {
        return Err(DecryptError::Length);
    }
    let mut out = Zeroizing::new(vec![0u8; data.len() - aes_kw::IV_LEN]);
    let n = kw
        .unwrap_key(data, &mut out)
        .map_err(|_| DecryptError::Integrity)?
        .len();
    out.truncate(n);
    Ok(out)
}

fn kw_wrap<C>(kw: &KwResult<aes_kw::AesKw<C>>, plain: &[u8]) -> Result<Vec<u8>, DecryptError>
where
    C: aes::cipher::BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>,
{
    let kw = kw.as_ref().map_err(|_| DecryptError::Length)?;
    let mut out = vec![0u8; plain.len() + aes_kw::IV_LEN];
    let n = kw
        .wrap_key(plain, &mut out)
        .map_err(|_| DecryptError::Length)?
        .len();
    out.truncate(n);
    Ok(out)
}

fn kwp_wrap<C>(kw: &KwResult<aes_kw::AesKwp<C>>, plain: &[u8]) -> Result<Vec<u8>, DecryptError>
where
    C: aes::cipher::BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>,
{
    let kw = kw.as_ref().map_err(|_| DecryptError::Length)?;
    let mut out = vec![0u8; plain.len().div_ceil(aes_kw::IV_LEN) * aes_kw::IV_LEN + aes_kw::IV_LEN];
    let n = kw
        .wrap_key(plain, &mut out)
        .map_err(|_| DecryptError::Length)?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Whether `uri` names PBKDF2.
pub(crate) fn is_pbkdf2(uri: &str) -> bool {
    let u = uri.trim();
    u == PBKDF2 || PBKDF2_ALIASES.contains(&u)
}

/// Whether `uri` (a `PRF` of PBKDF2-params) is HMAC-SHA1, the default.
pub(crate) fn is_hmac_sha1(uri: &str) -> bool {
    uri.trim() == HMAC_SHA1
}

/// HMAC-SHA1 of `data` under `key`.
pub(crate) fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Whether `tag` is the HMAC-SHA1 of `data` under `key` (constant time).
pub(crate) fn mac_ok(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

/// What a written file's container says about its key, and the key itself.
pub(crate) struct WriteKeys {
    pub(crate) cipher: Cipher,
    pub(crate) key: Zeroizing<Vec<u8>>,
    pub(crate) mac_key: Zeroizing<Vec<u8>>,
    /// `(salt, iterations)` under a password.
    pub(crate) derived: Option<(Vec<u8>, u32)>,
    pub(crate) key_name: Option<String>,
}

impl WriteKeys {
    pub(crate) fn new<R: CryptoRng + ?Sized>(protection: &Protection, rng: &mut R) -> WriteKeys {
        let mut mac_key = Zeroizing::new(vec![0u8; MAC_KEY_LEN]);
        rng.fill_bytes(&mut mac_key);
        match protection {
            Protection::Key(k) => WriteKeys {
                cipher: Cipher::Cbc(k.bytes().len()),
                key: Zeroizing::new(k.bytes().to_vec()),
                mac_key,
                derived: None,
                key_name: Some(k.name().to_string()),
            },
            Protection::Password(p) => {
                let mut salt = vec![0u8; SALT_LEN];
                rng.fill_bytes(&mut salt);
                let key = p.derive(&salt, p.iterations, 16);
                WriteKeys {
                    cipher: Cipher::Cbc(16),
                    key,
                    mac_key,
                    derived: Some((salt, p.iterations)),
                    key_name: None,
                }
            }
        }
    }
}

/// Why a key or password file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Group or others may access the file (as ssh refuses private keys).
    #[error(
        "{}: permissions {mode:04o} are too open: a key or password file must be accessible by its owner only (chmod 600 {})",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not a key or password.
    #[error("{}: {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// Not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
}

/// Refuse a secret file that group or others may access (mode & 0o077),
/// as ssh refuses such a private key.
fn check_private(path: &Path) -> Result<(), KeyFileError> {
    use crate::private_file::{self, PrivateFileError};
    private_file::check(path).map_err(|e| match e {
        PrivateFileError::TooOpen { path, mode } => KeyFileError::TooOpen { path, mode },
        PrivateFileError::NotAFile { path } => KeyFileError::NotAFile { path },
        PrivateFileError::Io { path, source } => KeyFileError::Io { path, source },
        e @ PrivateFileError::Symlink { .. } => KeyFileError::Io {
            path: e.path().to_path_buf(),
            source: e.into(),
        },
    })
}

fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    check_private(path)?;
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// The name a key file gives its key: the file's name.
fn key_name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(TransportKey::DEFAULT_NAME)
        .to_string()
}

/// Read a transport key file: the key's hex digits (32, 48 or 64; case and
/// whitespace free). The key is named after the file. The file must be
/// accessible by its owner only (mode 0600 or tighter).
///
/// # Errors
/// [`KeyFileError`]: unreadable, too open, or not a key.
pub fn read_key_file(path: &Path) -> Result<TransportKey, KeyFileError> {
    let text = read_private(path)?;
    TransportKey::from_hex(&text)
        .map(|k| k.named(&key_name_of(path)))
        .map_err(|source| KeyFileError::Malformed {
            path: path.to_path_buf(),
            source,
        })
}

/// Read a password file: its text less one trailing newline (`\n` or
/// `\r\n`). The file must be accessible by its owner only.
///
/// # Errors
/// [`KeyFileError`]: unreadable, too open, or empty.
pub fn read_password_file(path: &Path) -> Result<Password, KeyFileError> {
    let text = read_private(path)?;
    let t = text.as_str();
    let t = t
        .strip_suffix("\r\n")
        .or_else(|| t.strip_suffix('\n'))
        .unwrap_or(t);
    Password::new(t).map_err(|source| KeyFileError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// Read the key file at `path`, or create it (mode 0600) with a fresh
/// random AES-128 key when there is none. Returns the key and whether it
/// was created.
///
/// # Errors
/// [`KeyFileError`] as [`read_key_file`], or when the file cannot be written.
pub fn read_or_create_key_file<R: CryptoRng + ?Sized>(
    path: &Path,
    rng: &mut R,
) -> Result<(TransportKey, bool), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => return read_key_file(path).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = TransportKey::random(rng).named(&key_name_of(path));
    let mut text = key.to_hex();
    text.push('\n');
    match crate::private_file::create_new(path, text.as_bytes()) {
        Ok(true) => Ok((key, true)),
        // Another process made it meanwhile: use theirs.
        Ok(false) => read_key_file(path).map(|k| (k, false)),
        Err(e) => Err(KeyFileError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl rand_core::TryRng for Counter {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(u32::from(self.next()))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(u64::from(self.next()))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                *b = self.next();
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}
    impl Counter {
        fn next(&mut self) -> u8 {
            self.0 = self.0.wrapping_add(1);
            self.0
        }
    }

    #[test]
    fn every_cipher_round_trips_and_refuses_a_wrong_key() {
        let all = [
            AES128_CBC, AES192_CBC, AES256_CBC, KW_AES128, KW_AES192, KW_AES256, KWP_AES128,
            KWP_AES192, KWP_AES256,
        ];
        let mut rng = Counter(0);
        for uri in all {
            let c = Cipher::from_uri(uri).unwrap();
            assert_eq!(c.uri(), uri);
            let key = vec![7u8; c.key_len()];
            // KW takes multiples of 8 bytes; the others any length.
            for len in [16usize, 20, 24, 32, 64] {
                if matches!(c, Cipher::Kw(_)) && len % 8 != 0 {
                    assert!(c.encrypt(&key, &vec![1; len], &mut rng).is_err());
                    continue;
                }
                let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let ct = c.encrypt(&key, &plain, &mut rng).unwrap();
                assert_eq!(
                    c.decrypt(&key, &ct).unwrap().as_slice(),
                    plain,
                    "{uri} {len}"
                );
                let wrong = vec![8u8; c.key_len()];
                if c.has_integrity() {
                    assert_eq!(
                        c.decrypt(&wrong, &ct),
                        Err(DecryptError::Integrity),
                        "{uri}"
                    );
                }
                assert!(matches!(
                    c.decrypt(&key[1..], &ct),
                    Err(DecryptError::KeyLength { .. })
                ));
                assert_eq!(
                    c.decrypt(&key, &ct[..ct.len() - 1]),
                    Err(DecryptError::Length)
                );
            }
        }
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#tripledes-cbc"),
            None
        );
    }

    #[test]
    fn cbc_ivs_are_random_per_value() {
        let mut rng = Counter(0);
        let c = Cipher::Cbc(16);
        let a = c.encrypt(&[1; 16], b"same", &mut rng).unwrap();
        let b = c.encrypt(&[1; 16], b"same", &mut rng).unwrap();
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_and_passwords_are_checked_and_never_shown() {
        assert_eq!(
            TransportKey::new(vec![0; 15]).unwrap_err(),
            KeyError::Length(15)
        );
        assert_eq!(TransportKey::from_hex("zz").unwrap_err(), KeyError::NotHex);
        let k = TransportKey::from_hex(" 12345678901234567890123456789012\n").unwrap();
        assert_eq!(k.to_hex().as_str(), "12345678901234567890123456789012");
        assert!(!format!("{k:?}").contains("1234"));
        assert_eq!(Password::new("").unwrap_err(), KeyError::EmptyPassword);
        let p = Password::new("qwerty").unwrap();
        assert!(!format!("{p:?}").contains("qwerty"));
        assert_eq!(
            p.clone().with_iterations(0).unwrap_err(),
            KeyError::Iterations
        );
        // RFC 6030 Figure 7: "qwerty", its salt, 1000 iterations.
        let salt = data_encoding::BASE64.decode(b"Ej7/PEpyEpw=").unwrap();
        assert_eq!(
            hex::encode(p.derive(&salt, 1000, 16).as_slice()),
            "651e63cd57008476af1ff6422cd02e41"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("fobsim-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("transport.key");
        let _ = std::fs::remove_file(&path);
        let mut rng = Counter(0);
        let (k, created) = read_or_create_key_file(&path, &mut rng).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(k.name(), "transport.key");
        let (again, created) = read_or_create_key_file(&path, &mut rng).unwrap();
        assert!(!created);
        assert_eq!(again.bytes(), k.bytes());
        for bad in [0o644, 0o640, 0o604, 0o620, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let e = read_key_file(&path).unwrap_err();
            assert!(
                matches!(e, KeyFileError::TooOpen { mode, .. } if mode == bad),
                "{e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_key_file(&path).is_ok());
        let pw = dir.join("pass");
        std::fs::write(&pw, "qwerty\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = read_password_file(&pw).unwrap();
        assert_eq!(p.text.as_str(), "qwerty");
        std::fs::write(&pw, "\n").unwrap();
        assert!(matches!(
            read_password_file(&pw),
            Err(KeyFileError::Malformed {
                source: KeyError::EmptyPassword,
                ..
            })
        ));
        assert!(matches!(
            read_key_file(&dir),
            Err(KeyFileError::NotAFile { .. })
        ));
        assert!(matches!(
            read_key_file(&dir.join("missing")),
            Err(KeyFileError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
