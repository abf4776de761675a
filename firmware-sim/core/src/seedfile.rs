//! Vendor seed files: how a token's secret reaches a verification engine.
//!
//! Two formats, parse and emit over strings (no IO):
//! - **PSKC** (RFC 6030): `KeyContainer/KeyPackage/Key` with
//!   `DeviceInfo/SerialNo`, `Algorithm` = `…:pskc:hotp` or `…:pskc:totp`,
//!   `AlgorithmParameters/ResponseFormat@Length`, optional
//!   `AlgorithmParameters/Suite` (`HMAC-SHA1|HMAC-SHA256|HMAC-SHA512`),
//!   `Data/Secret` (base64), `Data/Counter`, `Data/TimeInterval`. Values
//!   are plain (`PlainValue`) or encrypted (`EncryptedValue`, RFC 6030 §6)
//!   under a pre-shared key or a password-derived key ([`Protection`]; the
//!   algorithms are in [`protect`]): [`parse_with`] opens them, every
//!   `ValueMAC` checked first; [`write_pskc_protected`] writes them. Key
//!   packages of PIN keys (`…:pskc:pin`, RFC 6030 §10.2) are not tokens and
//!   are left out. Signatures are not checked.
//! - **CSV**, the common vendor layout `serial,hexseed,TOTP,digits,step`
//!   (`HOTP` rows may give the counter as the 5th field); an optional 6th
//!   field names the hash (`sha1`, `sha256`, `sha512`). `#` starts a comment.
//!
//! A serial may appear only once per file. A file is taken whole or not at
//! all: any error, in any key package, and no record is returned.
//!
//! The key and password files of [`protect`] are this module's only IO.

use std::collections::HashMap;
use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::{Algorithm, Kind, Secret, SeedRecord, Serial};

pub mod protect;

pub use protect::{
    KeyError, KeyFileError, Password, Protection, TransportKey, read_key_file,
    read_or_create_key_file, read_password_file,
};

/// PSKC algorithm URI of HOTP (RFC 6030 §10).
pub const PSKC_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
/// PSKC algorithm URI of TOTP, as vendors and privacyIDEA write it.
pub const PSKC_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
/// PSKC algorithm URI of a PIN key (RFC 6030 §10.2): not a token.
pub const PSKC_PIN: &str = "urn:ietf:params:xml:ns:keyprov:pskc:pin";
const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

/// Why a seed file was refused. Line numbers are 1-based. Secrets never
/// appear in messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedFileError {
    /// A line or element is malformed.
    #[error("line {line}: {message}")]
    Syntax {
        /// Line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The same serial appears twice.
    #[error("line {line}: serial {serial} already appears on line {first_line}")]
    Duplicate {
        /// The repeated serial.
        serial: String,
        /// Where it first appeared.
        first_line: usize,
        /// Where it appears again.
        line: usize,
    },
    /// The file holds no tokens.
    #[error("the seed file holds no tokens")]
    Empty,
    /// An encrypted value of a key package cannot be used: no or the wrong
    /// key or password, a MAC that does not match, an unknown algorithm.
    #[error(
        "line {line}: KeyPackage {index} (line {package_line}{}): {problem}",
        serial.as_deref().map(|s| format!(", serial {s}")).unwrap_or_default()
    )]
    Encrypted {
        /// Line of the element at fault.
        line: usize,
        /// Which key package (1-based, in file order).
        index: usize,
        /// Where the key package starts.
        package_line: usize,
        /// Its serial (`DeviceInfo/SerialNo` or `Key@Id`), when it has one.
        serial: Option<String>,
        /// What is wrong.
        problem: EncryptionError,
    },
    /// A key or password was given for a file that holds no encrypted
    /// values (a CSV file, or plain PSKC).
    #[error("a {0} was given, but the file holds no encrypted values")]
    NotEncrypted(&'static str),
}

/// What is wrong with an encrypted PSKC value (see
/// [`SeedFileError::Encrypted`]). Secrets and keys never appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The value is encrypted and no key or password was given.
    #[error("{field} is encrypted under {needs}, and none was given")]
    NoKey {
        /// `Secret`, `Counter`, `TimeInterval`, or `MACKey`.
        field: &'static str,
        /// What the file is encrypted under.
        needs: String,
    },
    /// The file is encrypted under the other kind of key.
    #[error("{field} is encrypted under {needs}, but a {given} was given")]
    WrongKind {
        /// The value.
        field: &'static str,
        /// What the file is encrypted under.
        needs: String,
        /// What was given.
        given: &'static str,
    },
    /// An algorithm fobsim does not read.
    #[error("{what} {uri:?} is not supported (fobsim reads {supported})")]
    UnknownAlgorithm {
        /// Which algorithm (`EncryptionMethod`, `MACMethod`, ...).
        what: &'static str,
        /// Its URI.
        uri: String,
        /// What is supported instead.
        supported: &'static str,
    },
    /// The `ValueMAC` does not match: altered bytes, or a wrong key.
    #[error(
        "{field}: the ValueMAC does not match: the file was altered, or the {credential} is wrong"
    )]
    MacMismatch {
        /// The value.
        field: &'static str,
        /// `pre-shared key` or `password`.
        credential: &'static str,
    },
    /// An AES-CBC value without a `ValueMAC`.
    #[error("{field} has no ValueMAC, which RFC 6030 §6.1.1 requires with {cipher}")]
    MacMissing {
        /// The value.
        field: &'static str,
        /// Its algorithm.
        cipher: &'static str,
    },
    /// A value, or the MAC key, does not decrypt under the key given.
    #[error("{what} does not decrypt under the given {credential} (wrong {credential}?): {detail}")]
    WrongKey {
        /// `the MAC key`, `Secret`, ...
        what: &'static str,
        /// `pre-shared key` or `password`.
        credential: &'static str,
        /// What failed.
        detail: String,
    },
    /// A missing or malformed part.
    #[error("{0}")]
    Malformed(String),
}

/// The format of a seed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFormat {
    /// RFC 6030 XML.
    Pskc,
    /// `serial,hexseed,TOTP,digits,step`.
    Csv,
}

impl SeedFormat {
    /// Guess from a file name: `.csv` → CSV, anything else → PSKC.
    #[must_use]
    pub fn from_path(path: &std::path::Path) -> SeedFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => SeedFormat::Csv,
            _ => SeedFormat::Pskc,
        }
    }
}

/// Parse a seed file, detecting the format (XML if it starts with `<`).
/// Encrypted values are refused: see [`parse_with`].
///
/// # Errors
/// [`SeedFileError`] with the line of the first problem.
pub fn parse(text: &str) -> Result<Vec<SeedRecord>, SeedFileError> {
    parse_with(text, None)
}

/// Parse a seed file as [`parse`] does, opening encrypted PSKC values with
/// `protection` (a pre-shared key or a password).
///
/// # Errors
/// [`SeedFileError`] with the line of the first problem;
/// [`SeedFileError::Encrypted`] names the key package whose value cannot be
/// opened; [`SeedFileError::NotEncrypted`] when `protection` is given for a
/// file without encrypted values.
pub fn parse_with(
    text: &str,
    protection: Option<&Protection>,
) -> Result<Vec<SeedRecord>, SeedFileError> {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') {
        parse_pskc_with(text, protection)
    } else {
        let records = parse_csv(text)?;
        match protection {
            Some(p) => Err(SeedFileError::NotEncrypted(p.kind())),
            None => Ok(records),
        }
    }
}

/// Emit `records` in `format`.
#[must_use]
pub fn write(records: &[SeedRecord], format: SeedFormat) -> String {
    match format {
        SeedFormat::Pskc => write_pskc(records),
        SeedFormat::Csv => write_csv(records),
    }
}

fn syntax(line: usize, message: impl Into<String>) -> SeedFileError {
    SeedFileError::Syntax {
        line,
        message: message.into(),
    }
}

fn check_duplicates(recs: &[(usize, SeedRecord)]) -> Result<(), SeedFileError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, r) in recs {
        if let Some(first) = seen.insert(r.serial.as_str(), *line) {
            return Err(SeedFileError::Duplicate {
                serial: r.serial.to_string(),
                first_line: first,
                line: *line,
            });
        }
    }
    Ok(())
}

/// Parse the CSV layout.
///
/// # Errors
/// [`SeedFileError`] for a malformed row, a bad serial, secret, type,
/// digit count or step, a duplicate serial, or no rows at all.
pub fn parse_csv(text: &str) -> Result<Vec<SeedRecord>, SeedFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let f: Vec<&str> = content.split(',').map(str::trim).collect();
        if line == 1 && f.first().is_some_and(|s| s.eq_ignore_ascii_case("serial")) {
            continue; // a header row
        }
        if !(3..=6).contains(&f.len()) {
            return Err(syntax(
                line,
                format!(
                    "expected serial,hexseed,TOTP|HOTP,digits,step[,hash]; got {} fields",
                    f.len()
                ),
            ));
        }
        let serial = Serial::new(f[0]).map_err(|e| syntax(line, e.to_string()))?;
        let secret = Secret::from_hex(f[1]).map_err(|e| syntax(line, e.to_string()))?;
        let digits = match f.get(3) {
            None | Some(&"") => 6,
            Some(d) => d
                .parse::<u32>()
                .map_err(|_| syntax(line, format!("digits {d:?} is not a number")))?,
        };
        let digits = crate::check_digits(digits).map_err(|e| syntax(line, e.to_string()))?;
        let fifth = f.get(4).filter(|s| !s.is_empty());
        let number = |s: &str, what: &str| {
            s.parse::<u64>()
                .map_err(|_| syntax(line, format!("{what} {s:?} is not a number")))
        };
        let (kind, counter) = match f[2].to_ascii_uppercase().as_str() {
            "TOTP" => {
                let period = match fifth {
                    Some(s) => number(s, "step")?,
                    None => 30,
                };
                if period == 0 {
                    return Err(syntax(line, "step must be at least 1 second"));
                }
                (Kind::Totp { period }, 0)
            }
            "HOTP" => (
                Kind::Hotp,
                fifth
                    .map(|s| number(s, "counter"))
                    .transpose()?
                    .unwrap_or(0),
            ),
            other => {
                return Err(syntax(
                    line,
                    format!("type {other:?} is neither TOTP nor HOTP"),
                ));
            }
        };
        let algorithm = match f.get(5).filter(|s| !s.is_empty()) {
            Some(a) => a
                .parse()
                .map_err(|e: crate::OtpError| syntax(line, e.to_string()))?,
            None => Algorithm::Sha1,
        };
        out.push((
            line,
            SeedRecord {
                serial,
                kind,
                algorithm,
                digits,
                secret,
                counter,
            },
        ));
    }
    check_duplicates(&out)?;
    if out.is_empty() {
        return Err(SeedFileError::Empty);
    }
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Emit the CSV layout (always with the 6th, hash, field).
#[must_use]
pub fn write_csv(records: &[SeedRecord]) -> String {
    let mut s = String::from("# serial,hexseed,type,digits,step|counter,hash\n");
    for r in records {
        let (t, fifth) = match r.kind {
            Kind::Totp { period } => ("TOTP", period),
            Kind::Hotp => ("HOTP", r.counter),
        };
        let _ = writeln!(
            s,
            "{},{},{t},{},{fifth},{}",
            r.serial,
            r.secret.to_hex(),
            r.digits,
            r.algorithm
        );
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Emit PSKC (RFC 6030) with plain values.
#[must_use]
pub fn write_pskc(records: &[SeedRecord]) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(s, "<KeyContainer Version=\"1.0\" xmlns=\"{PSKC_NS}\">");
    for r in records {
        let secret = format!(
            "        <Secret><PlainValue>{}</PlainValue></Secret>\n",
            data_encoding::BASE64.encode(r.secret.expose())
        );
        write_package(&mut s, "", r, &secret);
    }
    s.push_str("</KeyContainer>\n");
    s
}

/// Emit PSKC (RFC 6030) with every secret encrypted under `protection`
/// (RFC 6030 §6): AES-CBC (AES-128 under a password; the key's size under
/// a pre-shared key) with a fresh random IV per value, an HMAC-SHA1
/// `ValueMAC` on every value under a random MAC key (itself encrypted),
/// and under a password a random PBKDF2 salt. `rng` gives the IVs, the MAC
/// key and the salt: use a cryptographic one (e.g. `rand::rng()`).
/// Counters and steps stay plain, as vendors ship them.
#[must_use]
pub fn write_pskc_protected<R: rand_core::CryptoRng + ?Sized>(
    records: &[SeedRecord],
    protection: &Protection,
    rng: &mut R,
) -> String {
    let keys = protect::WriteKeys::new(protection, rng);
    let cipher_uri = keys.cipher.uri();
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    // Encryption under a checked key of the cipher's size cannot fail.
    let seal = |plain: &[u8], rng: &mut R| {
        keys.cipher
            .encrypt(&keys.key, plain, rng)
            .unwrap_or_default()
    };
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        s,
        "<pskc:KeyContainer Version=\"1.0\" xmlns:pskc=\"{PSKC_NS}\" xmlns:ds=\"{}\" xmlns:xenc=\"{}\"",
        protect::DS_NS,
        protect::XENC_NS
    );
    match &keys.derived {
        Some(_) => {
            let _ = writeln!(
                s,
                " xmlns:xenc11=\"{}\" xmlns:pkcs5=\"{}\">",
                protect::XENC11_NS,
                protect::PKCS5_NS
            );
        }
        None => s.push_str(">\n"),
    }
    s.push_str("  <pskc:EncryptionKey>\n");
    match (&keys.derived, &keys.key_name) {
        (Some((salt, iterations)), _) => {
            let _ = write!(
                s,
                "    <xenc11:DerivedKey>\n      <xenc11:KeyDerivationMethod Algorithm=\"{}\">\n        <pkcs5:PBKDF2-params>\n          <Salt><Specified>{}</Specified></Salt>\n          <IterationCount>{iterations}</IterationCount>\n          <KeyLength>{}</KeyLength>\n        </pkcs5:PBKDF2-params>\n      </xenc11:KeyDerivationMethod>\n    </xenc11:DerivedKey>\n",
                protect::PBKDF2,
                b64(salt),
                keys.key.len()
            );
        }
        (None, name) => {
            let _ = writeln!(
                s,
                "    <ds:KeyName>{}</ds:KeyName>",
                xml_escape(name.as_deref().unwrap_or(TransportKey::DEFAULT_NAME))
            );
        }
    }
    s.push_str("  </pskc:EncryptionKey>\n");
    let mac_key = seal(&keys.mac_key, rng);
    let _ = write!(
        s,
        "  <pskc:MACMethod Algorithm=\"{}\">\n    <pskc:MACKey>\n      <xenc:EncryptionMethod Algorithm=\"{cipher_uri}\"/>\n      <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\n    </pskc:MACKey>\n  </pskc:MACMethod>\n",
        protect::HMAC_SHA1,
        b64(&mac_key)
    );
    for r in records {
        let sealed = seal(r.secret.expose(), rng);
        let tag = protect::mac(&keys.mac_key, &sealed);
        let secret = format!(
            "        <pskc:Secret>\n          <pskc:EncryptedValue>\n            <xenc:EncryptionMethod Algorithm=\"{cipher_uri}\"/>\n            <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\n          </pskc:EncryptedValue>\n          <pskc:ValueMAC>{}</pskc:ValueMAC>\n        </pskc:Secret>\n",
            b64(&sealed),
            b64(&tag)
        );
        write_package(&mut s, "pskc:", r, &secret);
    }
    s.push_str("</pskc:KeyContainer>\n");
    s
}

/// One `KeyPackage`, its element names prefixed with `p`; `secret` is the
/// `Secret` element, written as given.
fn write_package(s: &mut String, p: &str, r: &SeedRecord, secret: &str) {
    let serial = xml_escape(r.serial.as_str());
    let uri = match r.kind {
        Kind::Totp { .. } => PSKC_TOTP,
        Kind::Hotp => PSKC_HOTP,
    };
    let _ = writeln!(s, "  <{p}KeyPackage>");
    let _ = writeln!(s, "    <{p}DeviceInfo>");
    let _ = writeln!(s, "      <{p}Manufacturer>fobsim</{p}Manufacturer>");
    let _ = writeln!(s, "      <{p}SerialNo>{serial}</{p}SerialNo>");
    let _ = writeln!(s, "    </{p}DeviceInfo>");
    let _ = writeln!(s, "    <{p}Key Id=\"{serial}\" Algorithm=\"{uri}\">");
    let _ = writeln!(s, "      <{p}Issuer>fobsim</{p}Issuer>");
    let _ = writeln!(s, "      <{p}AlgorithmParameters>");
    let _ = writeln!(
        s,
        "        <{p}Suite>HMAC-{}</{p}Suite>",
        r.algorithm.as_str().to_ascii_uppercase()
    );
    let _ = writeln!(
        s,
        "        <{p}ResponseFormat Length=\"{}\" Encoding=\"DECIMAL\"/>",
        r.digits
    );
    let _ = writeln!(s, "      </{p}AlgorithmParameters>");
    let _ = writeln!(s, "      <{p}Data>");
    s.push_str(secret);
    match r.kind {
        Kind::Totp { period } => {
            let _ = writeln!(
                s,
                "        <{p}Time><{p}PlainValue>0</{p}PlainValue></{p}Time>"
            );
            let _ = writeln!(
                s,
                "        <{p}TimeInterval><{p}PlainValue>{period}</{p}PlainValue></{p}TimeInterval>"
            );
        }
        Kind::Hotp => {
            let _ = writeln!(
                s,
                "        <{p}Counter><{p}PlainValue>{}</{p}PlainValue></{p}Counter>",
                r.counter
            );
        }
    }
    let _ = writeln!(s, "      </{p}Data>");
    let _ = writeln!(s, "    </{p}Key>");
    let _ = writeln!(s, "  </{p}KeyPackage>");
}

/// One `Data` child (`Secret`, `Counter`, `TimeInterval`) as written.
#[derive(Default)]
struct Field {
    plain: Option<String>,
    encrypted: Option<Sealed>,
    /// `(line, base64)` of `ValueMAC`.
    mac: Option<(usize, String)>,
}

/// An `EncryptedValue`.
#[derive(Default)]
struct Sealed {
    line: usize,
    /// `(line, URI)` of `EncryptionMethod@Algorithm`.
    method: Option<(usize, String)>,
    cipher_b64: Option<String>,
    /// `CipherData/CipherReference` instead of a value.
    reference: bool,
}

/// What one `KeyPackage` said, before validation.
#[derive(Default)]
struct Pending {
    line: usize,
    serial: Option<String>,
    key_id: Option<String>,
    algorithm_uri: Option<String>,
    suite: Option<String>,
    digits: Option<String>,
    secret: Field,
    counter: Field,
    period: Field,
}

/// `EncryptionKey/DerivedKey` (RFC 6030 §6.2).
#[derive(Default)]
struct Derived {
    line: usize,
    /// `(line, URI)` of `KeyDerivationMethod@Algorithm`.
    method: Option<(usize, String)>,
    salt_b64: Option<String>,
    other_salt: bool,
    iterations: Option<String>,
    key_length: Option<String>,
    prf: Option<(usize, String)>,
}

/// `MACMethod` (RFC 6030 §6.1.1).
#[derive(Default)]
struct MacMethod {
    line: usize,
    algorithm: Option<String>,
    key_line: usize,
    /// `(line, URI)` of `MACKey/EncryptionMethod@Algorithm`.
    key_method: Option<(usize, String)>,
    key_cipher_b64: Option<String>,
    reference: bool,
}

/// What the container says about its encryption, and the keys once opened.
#[derive(Default)]
struct Container {
    key_name: Option<String>,
    derived: Option<Derived>,
    mac: Option<MacMethod>,
    /// `(length, key)` derived from the password.
    derived_key: Option<(usize, zeroize::Zeroizing<Vec<u8>>)>,
    mac_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Whether any encrypted value was seen.
    encrypted: bool,
}

/// A failure at a line, before it is tied to its key package.
type AtLine = (usize, EncryptionError);

/// What an opened value is.
enum Opened {
    Plain(String),
    Bytes(zeroize::Zeroizing<Vec<u8>>),
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    data_encoding::BASE64.decode(cleaned.as_bytes()).ok()
}

fn malformed(line: usize, m: impl Into<String>) -> AtLine {
    (line, EncryptionError::Malformed(m.into()))
}

impl Container {
    /// What the file is encrypted under, for messages.
    fn needs(&self) -> String {
        match (&self.derived, &self.key_name) {
            (Some(_), _) => "a password (PBKDF2)".to_string(),
            (None, Some(n)) => format!("the pre-shared key {:?}", n.trim()),
            (None, None) => "a pre-shared key".to_string(),
        }
    }

    /// The file's key for `cipher` (derived from the password when the file
    /// says so). `line` is the value's, for errors of the kind of key.
    fn key(
        &mut self,
        protection: Option<&Protection>,
        field: &'static str,
        line: usize,
        cipher: protect::Cipher,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, AtLine> {
        let Some(protection) = protection else {
            return Err((
                line,
                EncryptionError::NoKey {
                    field,
                    needs: self.needs(),
                },
            ));
        };
        match (protection, &self.derived) {
            (Protection::Key(k), None) => Ok(zeroize::Zeroizing::new(k.bytes().to_vec())),
            (Protection::Password(p), Some(d)) => {
                let need = cipher.key_len();
                if let Some((len, key)) = &self.derived_key
                    && *len == need
                {
                    return Ok(key.clone());
                }
                let (mline, method) = d.method.clone().unwrap_or((d.line, String::new()));
                if !protect::is_pbkdf2(&method) {
                    return Err((
                        mline,
                        EncryptionError::UnknownAlgorithm {
                            what: "KeyDerivationMethod",
                            uri: method,
                            supported: "PBKDF2",
                        },
                    ));
                }
                if let Some((pline, prf)) = &d.prf
                    && !prf.trim().is_empty()
                    && !protect::is_hmac_sha1(prf)
                {
                    return Err((
                        *pline,
                        EncryptionError::UnknownAlgorithm {
                            what: "PBKDF2 PRF",
                            uri: prf.clone(),
                            supported: "HMAC-SHA1",
                        },
                    ));
                }
                if d.other_salt {
                    return Err(malformed(
                        mline,
                        "PBKDF2 Salt/OtherSource is not supported: the salt must be Specified",
                    ));
                }
                let salt = d
                    .salt_b64
                    .as_deref()
                    .ok_or_else(|| malformed(mline, "PBKDF2-params has no Salt/Specified"))?;
                let salt = b64_decode(salt)
                    .ok_or_else(|| malformed(mline, "PBKDF2 Salt is not valid base64"))?;
                let iterations = d
                    .iterations
                    .as_deref()
                    .ok_or_else(|| malformed(mline, "PBKDF2-params has no IterationCount"))?;
                let iterations: u32 = iterations
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        malformed(
                            mline,
                            format!(
                                "PBKDF2 IterationCount {:?} is not a positive number",
                                iterations.trim()
                            ),
                        )
                    })?;
                if iterations > p.max_iterations() {
                    return Err(malformed(
                        mline,
                        format!(
                            "PBKDF2 IterationCount {iterations} is above the limit of {}",
                            p.max_iterations()
                        ),
                    ));
                }
                if let Some(kl) = &d.key_length {
                    match kl.trim().parse::<usize>() {
                        Ok(n) if n == need => {}
                        _ => {
                            return Err(malformed(
                                mline,
                                format!(
                                    "PBKDF2 KeyLength {:?} does not fit {} ({need} bytes)",
                                    kl.trim(),
                                    cipher.uri()
                                ),
                            ));
                        }
                    }
                }
                let key = p.derive(&salt, iterations, need);
                self.derived_key = Some((need, key.clone()));
                Ok(key)
            }
            (given, _) => Err((
                line,
                EncryptionError::WrongKind {
                    field,
                    needs: self.needs(),
                    given: given.kind(),
                },
            )),
        }
    }

    /// The MAC key, opened once per file.
    fn mac_key(
        &mut self,
        protection: Option<&Protection>,
        field: &'static str,
        mac_line: usize,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, AtLine> {
        if let Some(k) = &self.mac_key {
            return Ok(k.clone());
        }
        let Some(m) = &self.mac else {
            return Err(malformed(
                mac_line,
                format!("{field} has a ValueMAC but the KeyContainer has no MACMethod"),
            ));
        };
        let (line, key_line) = (m.line, m.key_line);
        let algorithm = m.algorithm.clone().unwrap_or_default();
        if algorithm.trim() != protect::HMAC_SHA1 {
            return Err((
                line,
                EncryptionError::UnknownAlgorithm {
                    what: "MACMethod",
                    uri: algorithm,
                    supported: "HMAC-SHA1",
                },
            ));
        }
        if m.reference && m.key_cipher_b64.is_none() {
            return Err(malformed(
                line,
                "MACMethod/MACKeyReference (a MAC key agreed out of band) is not supported: the file must carry its MACKey",
            ));
        }
        let (mline, method) = m
            .key_method
            .clone()
            .ok_or_else(|| malformed(key_line, "MACKey has no EncryptionMethod"))?;
        let cipher_b64 = m
            .key_cipher_b64
            .clone()
            .ok_or_else(|| malformed(key_line, "MACMethod has no MACKey/CipherData/CipherValue"))?;
        let cipher = protect::Cipher::from_uri(&method).ok_or_else(|| {
            (
                mline,
                EncryptionError::UnknownAlgorithm {
                    what: "MACKey EncryptionMethod",
                    uri: method.clone(),
                    supported: protect::SUPPORTED_CIPHERS,
                },
            )
        })?;
        let data = b64_decode(&cipher_b64)
            .ok_or_else(|| malformed(key_line, "MACKey CipherValue is not valid base64"))?;
        let key = self.key(protection, "MACKey", key_line, cipher)?;
        let credential = protection.map_or("key", Protection::kind);
        let mac_key = cipher.decrypt(&key, &data).map_err(|e| {
            (
                key_line,
                EncryptionError::WrongKey {
                    what: "the MAC key",
                    credential,
                    detail: e.to_string(),
                },
            )
        })?;
        self.mac_key = Some(mac_key.clone());
        Ok(mac_key)
    }

    /// Check the `ValueMAC` of an encrypted field (or that its algorithm
    /// needs none); returns the algorithm and the ciphertext.
    fn check(
        &mut self,
        protection: Option<&Protection>,
        field: &'static str,
        f: &Field,
        sealed: &Sealed,
    ) -> Result<(protect::Cipher, Vec<u8>), AtLine> {
        let (mline, method) = sealed.method.clone().ok_or_else(|| {
            malformed(
                sealed.line,
                format!("{field} EncryptedValue has no EncryptionMethod"),
            )
        })?;
        let cipher = protect::Cipher::from_uri(&method).ok_or_else(|| {
            (
                mline,
                EncryptionError::UnknownAlgorithm {
                    what: "EncryptionMethod",
                    uri: method.clone(),
                    supported: protect::SUPPORTED_CIPHERS,
                },
            )
        })?;
        if sealed.reference {
            return Err(malformed(
                sealed.line,
                format!(
                    "{field} CipherData/CipherReference is not supported: the value must be in CipherValue"
                ),
            ));
        }
        let data = sealed.cipher_b64.as_deref().ok_or_else(|| {
            malformed(
                sealed.line,
                format!("{field} EncryptedValue has no CipherData/CipherValue"),
            )
        })?;
        let data = b64_decode(data).ok_or_else(|| {
            malformed(
                sealed.line,
                format!("{field} CipherValue is not valid base64"),
            )
        })?;
        // The key first: say that none (or the other kind) was given before
        // saying that the MAC cannot be checked.
        self.key(protection, field, sealed.line, cipher)?;
        match &f.mac {
            Some((line, tag)) => {
                let tag = b64_decode(tag).ok_or_else(|| {
                    malformed(*line, format!("{field} ValueMAC is not valid base64"))
                })?;
                let key = self.mac_key(protection, field, *line)?;
                if !protect::mac_ok(&key, &data, &tag) {
                    return Err((
                        *line,
                        EncryptionError::MacMismatch {
                            field,
                            credential: protection.map_or("key", Protection::kind),
                        },
                    ));
                }
            }
            None if !cipher.has_integrity() => {
                return Err((
                    sealed.line,
                    EncryptionError::MacMissing {
                        field,
                        cipher: cipher.uri(),
                    },
                ));
            }
            None => {}
        }
        Ok((cipher, data))
    }

    /// Open the fields of one key package: every MAC first, then decrypt.
    fn open(
        &mut self,
        protection: Option<&Protection>,
        fields: [(&'static str, &Field); 3],
    ) -> Result<[Option<Opened>; 3], AtLine> {
        let mut checked = Vec::with_capacity(3);
        for (name, f) in fields {
            match &f.encrypted {
                Some(sealed) => {
                    self.encrypted = true;
                    let (cipher, data) = self.check(protection, name, f, sealed)?;
                    checked.push(Some((cipher, data, sealed.line)));
                }
                None => checked.push(None),
            }
        }
        let mut out: [Option<Opened>; 3] = [None, None, None];
        for (i, ((name, f), c)) in fields.into_iter().zip(checked).enumerate() {
            out[i] = match c {
                Some((cipher, data, line)) => {
                    let key = self.key(protection, name, line, cipher)?;
                    let plain = cipher.decrypt(&key, &data).map_err(|e| {
                        (
                            line,
                            EncryptionError::WrongKey {
                                what: name,
                                credential: protection.map_or("key", Protection::kind),
                                detail: e.to_string(),
                            },
                        )
                    })?;
                    Some(Opened::Bytes(plain))
                }
                None => f.plain.clone().map(Opened::Plain),
            };
        }
        Ok(out)
    }
}

/// A number from a plain value, or from a decrypted big-endian integer of
/// 1 to 8 bytes.
fn number(v: Option<Opened>, what: &str, default: u64, line: usize) -> Result<u64, SeedFileError> {
    match v {
        None => Ok(default),
        Some(Opened::Plain(s)) => s
            .trim()
            .parse()
            .map_err(|_| syntax(line, format!("{what} {s:?} is not a number"))),
        Some(Opened::Bytes(b)) if (1..=8).contains(&b.len()) => {
            Ok(b.iter().fold(0u64, |n, byte| (n << 8) | u64::from(*byte)))
        }
        Some(Opened::Bytes(b)) => Err(syntax(
            line,
            format!(
                "encrypted {what} is {} bytes; a big-endian integer of 1 to 8 bytes was expected",
                b.len()
            ),
        )),
    }
}

/// One key package after its values were opened, before validation.
struct Package {
    line: usize,
    serial: Option<String>,
    key_id: Option<String>,
    algorithm_uri: Option<String>,
    suite: Option<String>,
    digits: Option<String>,
    secret: Option<Opened>,
    counter: Option<Opened>,
    period: Option<Opened>,
}

impl Package {
    /// A PIN key (RFC 6030 §10.2): not a token.
    fn is_pin(&self) -> bool {
        self.algorithm_uri
            .as_deref()
            .is_some_and(|u| u.trim().eq_ignore_ascii_case(PSKC_PIN))
    }

    /// The secret's bytes.
    fn secret_bytes(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, SeedFileError> {
        let line = self.line;
        match self.secret.take() {
            None => Err(syntax(line, "Key has no Data/Secret/PlainValue")),
            Some(Opened::Bytes(b)) => Ok(b),
            Some(Opened::Plain(b64)) => b64_decode(&b64)
                .map(zeroize::Zeroizing::new)
                .ok_or_else(|| syntax(line, "Data/Secret/PlainValue is not valid base64")),
        }
    }

    fn finish(mut self) -> Result<SeedRecord, SeedFileError> {
        let line = self.line;
        let serial_text = self.serial.take().or(self.key_id.take()).ok_or_else(|| {
            syntax(
                line,
                "KeyPackage has neither DeviceInfo/SerialNo nor Key@Id",
            )
        })?;
        let serial = Serial::new(serial_text.trim()).map_err(|e| syntax(line, e.to_string()))?;
        let uri = self
            .algorithm_uri
            .take()
            .ok_or_else(|| syntax(line, "Key has no Algorithm attribute"))?;
        let bytes = self.secret_bytes()?;
        let secret = Secret::new(bytes.to_vec()).map_err(|e| syntax(line, e.to_string()))?;
        let digits = match self.digits.take() {
            Some(d) => d.trim().parse::<u32>().map_err(|_| {
                syntax(line, format!("ResponseFormat Length {d:?} is not a number"))
            })?,
            None => 6,
        };
        let digits = crate::check_digits(digits).map_err(|e| syntax(line, e.to_string()))?;
        let algorithm = match self.suite.take() {
            Some(s) => s
                .trim()
                .parse()
                .map_err(|e: crate::OtpError| syntax(line, e.to_string()))?,
            None => Algorithm::Sha1,
        };
        let lower = uri.trim().to_ascii_lowercase();
        let (kind, counter) = if lower.ends_with(":totp") || lower.ends_with("#totp") {
            let period = number(self.period.take(), "TimeInterval", 30, line)?;
            if period == 0 {
                return Err(syntax(line, "TimeInterval must be at least 1 second"));
            }
            (Kind::Totp { period }, 0)
        } else if lower.ends_with(":hotp") || lower.ends_with("#hotp") {
            (Kind::Hotp, number(self.counter.take(), "Counter", 0, line)?)
        } else {
            return Err(syntax(line, format!("unsupported Key Algorithm {uri:?}")));
        };
        Ok(SeedRecord {
            serial,
            kind,
            algorithm,
            digits,
            secret,
            counter,
        })
    }
}

/// Whether `path` ends with `suffix` (local names).
fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(a, b)| a == b)
}

/// The `Data` field a path (ending at the field's child) is in.
fn field_mut<'a>(p: &'a mut Pending, name: &str) -> Option<&'a mut Field> {
    match name {
        "Secret" => Some(&mut p.secret),
        "Counter" => Some(&mut p.counter),
        "TimeInterval" => Some(&mut p.period),
        _ => None,
    }
}

/// Parse PSKC (RFC 6030) with plain values (encrypted ones are refused).
///
/// # Errors
/// [`SeedFileError`] for malformed XML, encrypted values, missing or invalid
/// fields, duplicate serials, or no key packages.
pub fn parse_pskc(text: &str) -> Result<Vec<SeedRecord>, SeedFileError> {
    parse_pskc_with(text, None)
}

/// Parse PSKC (RFC 6030), opening encrypted values with `protection`.
///
/// # Errors
/// As [`parse_with`].
pub fn parse_pskc_with(
    text: &str,
    protection: Option<&Protection>,
) -> Result<Vec<SeedRecord>, SeedFileError> {
    let mut out: Vec<(usize, SeedRecord)> = Vec::new();
    let encrypted = read_packages(text, protection, &mut |p| {
        if p.is_pin() {
            return Ok(());
        }
        let l = p.line;
        out.push((l, p.finish()?));
        Ok(())
    })?;
    if let Some(p) = protection
        && !encrypted
    {
        return Err(SeedFileError::NotEncrypted(p.kind()));
    }
    check_duplicates(&out)?;
    if out.is_empty() {
        return Err(SeedFileError::Empty);
    }
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Read every key package of a PSKC file, opening its values, and hand
/// each to `each` in file order. Returns whether any value was encrypted.
fn read_packages(
    text: &str,
    protection: Option<&Protection>,
    each: &mut dyn FnMut(Package) -> Result<(), SeedFileError>,
) -> Result<bool, SeedFileError> {
    let line_of = |pos: u64| -> usize {
        let end = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
        text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    };
    // Event positions only move forward: count the newlines since the last
    // event, not from the start (linear in the file, not quadratic).
    let (mut counted_to, mut counted_line) = (0usize, 1usize);
    let mut line_at = |pos: u64| -> usize {
        let end = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
        if end < counted_to {
            return line_of(pos);
        }
        counted_line += text.as_bytes()[counted_to..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        counted_to = end;
        counted_line
    };
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    // The line each open element of `path` starts on.
    let mut starts: Vec<usize> = Vec::new();
    let mut current: Option<Pending> = None;
    let mut container = Container::default();
    let mut packages = 0usize;
    let mut text_buf = String::new();
    let mut saw_container = false;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            syntax(
                line_of(reader.error_position()),
                format!("malformed XML: {e}"),
            )
        })?;
        let line = line_at(pos);
        match event {
            ev @ (Event::Start(_) | Event::Empty(_)) => {
                let self_closing = matches!(ev, Event::Empty(_));
                let (Event::Start(e) | Event::Empty(e)) = ev else {
                    continue;
                };
                let name = e.local_name().into_inner().to_string();
                let mut attrs: HashMap<String, String> = HashMap::new();
                for a in e.attributes() {
                    let a = a.map_err(|err| syntax(line, format!("malformed attribute: {err}")))?;
                    let key = a.key.local_name().into_inner().to_string();
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|err| syntax(line, format!("malformed attribute: {err}")))?;
                    attrs.insert(key, value.into_owned());
                }
                let algorithm = || attrs.get("Algorithm").cloned();
                match name.as_str() {
                    "KeyContainer" => saw_container = true,
                    "KeyPackage" => {
                        current = Some(Pending {
                            line,
                            ..Pending::default()
                        });
                    }
                    "Key" => {
                        if let Some(p) = current.as_mut() {
                            p.key_id = attrs.get("Id").cloned();
                            p.algorithm_uri = algorithm();
                        }
                    }
                    "ResponseFormat" => {
                        if let Some(p) = current.as_mut() {
                            p.digits = attrs.get("Length").cloned();
                        }
                    }
                    "EncryptedValue" => {
                        if let Some(f) = current
                            .as_mut()
                            .zip(path.last())
                            .and_then(|(p, parent)| field_mut(p, parent))
                        {
                            f.encrypted = Some(Sealed {
                                line,
                                ..Sealed::default()
                            });
                        }
                    }
                    "EncryptionMethod" if ends_with(&path, &["EncryptedValue"]) => {
                        if let Some(s) = current
                            .as_mut()
                            .zip(path.len().checked_sub(2).and_then(|i| path.get(i)))
                            .and_then(|(p, field)| field_mut(p, field))
                            .and_then(|f| f.encrypted.as_mut())
                        {
                            s.method = Some((line, algorithm().unwrap_or_default()));
                        }
                    }
                    "CipherReference" if ends_with(&path, &["EncryptedValue", "CipherData"]) => {
                        if let Some(s) = current
                            .as_mut()
                            .zip(path.len().checked_sub(3).and_then(|i| path.get(i)))
                            .and_then(|(p, field)| field_mut(p, field))
                            .and_then(|f| f.encrypted.as_mut())
                        {
                            s.reference = true;
                        }
                    }
                    "DerivedKey" if ends_with(&path, &["EncryptionKey"]) => {
                        container.derived = Some(Derived {
                            line,
                            ..Derived::default()
                        });
                    }
                    "KeyDerivationMethod" if ends_with(&path, &["DerivedKey"]) => {
                        if let Some(d) = container.derived.as_mut() {
                            d.method = Some((line, algorithm().unwrap_or_default()));
                        }
                    }
                    "PRF" if ends_with(&path, &["PBKDF2-params"]) => {
                        if let Some(d) = container.derived.as_mut() {
                            d.prf = algorithm().map(|a| (line, a));
                        }
                    }
                    "OtherSource" if ends_with(&path, &["PBKDF2-params", "Salt"]) => {
                        if let Some(d) = container.derived.as_mut() {
                            d.other_salt = true;
                        }
                    }
                    "MACMethod" if current.is_none() => {
                        container.mac = Some(MacMethod {
                            line,
                            algorithm: algorithm(),
                            key_line: line,
                            ..MacMethod::default()
                        });
                    }
                    "MACKey" if ends_with(&path, &["MACMethod"]) => {
                        if let Some(m) = container.mac.as_mut() {
                            m.key_line = line;
                        }
                    }
                    "EncryptionMethod" if ends_with(&path, &["MACMethod", "MACKey"]) => {
                        if let Some(m) = container.mac.as_mut() {
                            m.key_method = Some((line, algorithm().unwrap_or_default()));
                        }
                    }
                    "MACKeyReference" if ends_with(&path, &["MACMethod"]) => {
                        if let Some(m) = container.mac.as_mut() {
                            m.reference = true;
                        }
                    }
                    _ => {}
                }
                text_buf.clear();
                // A self-closing element has no end tag.
                if !self_closing {
                    path.push(name);
                    starts.push(line);
                }
            }
            Event::Text(t) => text_buf.push_str(&t.xml10_content()),
            Event::CData(c) => text_buf.push_str(&c.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(ch)) = r.resolve_char_ref() {
                    text_buf.push(ch);
                } else {
                    let ent = r.into_inner();
                    let ch = match ent.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(syntax(line, format!("unknown entity &{other};"))),
                    };
                    text_buf.push(ch);
                }
            }
            Event::End(e) => {
                let name = e.local_name().into_inner().to_string();
                let value = std::mem::take(&mut text_buf);
                let start = starts.pop().unwrap_or(line);
                let parent = path
                    .len()
                    .checked_sub(2)
                    .and_then(|i| path.get(i))
                    .map(String::as_str);
                if let Some(p) = current.as_mut() {
                    match (parent, name.as_str()) {
                        (Some("DeviceInfo"), "SerialNo") => p.serial = Some(value),
                        (Some("AlgorithmParameters"), "Suite") => p.suite = Some(value),
                        (Some(field), "PlainValue") => {
                            if let Some(f) = field_mut(p, field) {
                                f.plain = Some(value);
                            }
                        }
                        (Some(field), "ValueMAC") => {
                            if let Some(f) = field_mut(p, field) {
                                f.mac = Some((start, value));
                            }
                        }
                        (Some("CipherData"), "CipherValue")
                            if ends_with(
                                &path,
                                &["EncryptedValue", "CipherData", "CipherValue"],
                            ) =>
                        {
                            if let Some(s) = path
                                .len()
                                .checked_sub(4)
                                .and_then(|i| path.get(i))
                                .and_then(|field| field_mut(p, field))
                                .and_then(|f| f.encrypted.as_mut())
                            {
                                s.cipher_b64 = Some(value);
                            }
                        }
                        _ => {}
                    }
                } else if ends_with(&path, &["EncryptionKey", "KeyName"]) {
                    container.key_name = Some(value);
                } else if ends_with(&path, &["MACMethod", "MACKey", "CipherData", "CipherValue"]) {
                    if let Some(m) = container.mac.as_mut() {
                        m.key_cipher_b64 = Some(value);
                    }
                } else if let Some(d) = container.derived.as_mut() {
                    if ends_with(&path, &["PBKDF2-params", "Salt", "Specified"]) {
                        d.salt_b64 = Some(value);
                    } else if ends_with(&path, &["PBKDF2-params", "IterationCount"]) {
                        d.iterations = Some(value);
                    } else if ends_with(&path, &["PBKDF2-params", "KeyLength"]) {
                        d.key_length = Some(value);
                    }
                }
                if name == "KeyPackage"
                    && let Some(p) = current.take()
                {
                    packages += 1;
                    let label_serial = p.serial.clone().or_else(|| p.key_id.clone());
                    let opened = container
                        .open(
                            protection,
                            [
                                ("Secret", &p.secret),
                                ("Counter", &p.counter),
                                ("TimeInterval", &p.period),
                            ],
                        )
                        .map_err(|(at, problem)| SeedFileError::Encrypted {
                            line: at,
                            index: packages,
                            package_line: p.line,
                            serial: label_serial.map(|s| s.trim().to_string()),
                            problem,
                        })?;
                    let [secret, counter, period] = opened;
                    each(Package {
                        line: p.line,
                        serial: p.serial,
                        key_id: p.key_id,
                        algorithm_uri: p.algorithm_uri,
                        suite: p.suite,
                        digits: p.digits,
                        secret,
                        counter,
                        period,
                    })?;
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = path.last() {
        return Err(syntax(
            line_of(text.len() as u64),
            format!("unexpected end of file inside <{open}>"),
        ));
    }
    if !saw_container {
        return Err(syntax(1, "not a PSKC file: no KeyContainer element"));
    }
    Ok(container.encrypted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(serial: &str, kind: Kind, alg: Algorithm, digits: u8) -> SeedRecord {
        SeedRecord {
            serial: Serial::new(serial).unwrap(),
            kind,
            algorithm: alg,
            digits,
            secret: Secret::from_hex("3132333435363738393031323334353637383930").unwrap(),
            counter: 0,
        }
    }

    fn same(a: &SeedRecord, b: &SeedRecord) -> bool {
        a.serial == b.serial
            && a.kind == b.kind
            && a.algorithm == b.algorithm
            && a.digits == b.digits
            && a.secret == b.secret
            && a.counter == b.counter
    }

    fn sample() -> Vec<SeedRecord> {
        let mut h = rec("C100000000001", Kind::Hotp, Algorithm::Sha1, 6);
        h.counter = 17;
        vec![
            rec(
                "GAHT00000001",
                Kind::Totp { period: 30 },
                Algorithm::Sha1,
                6,
            ),
            rec(
                "OTPD800000001",
                Kind::Totp { period: 60 },
                Algorithm::Sha256,
                8,
            ),
            h,
        ]
    }

    #[test]
    fn pskc_and_csv_round_trip() {
        for fmt in [SeedFormat::Pskc, SeedFormat::Csv] {
            let text = write(&sample(), fmt);
            let back = parse(&text).unwrap();
            assert_eq!(back.len(), 3, "{fmt:?}");
            for (a, b) in sample().iter().zip(&back) {
                assert!(same(a, b), "{fmt:?}: {a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn rfc6030_figure_style_with_prefixes() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer Version="1.0" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <pskc:KeyPackage>
    <pskc:DeviceInfo><pskc:Manufacturer>Manufacturer</pskc:Manufacturer><pskc:SerialNo>987654321</pskc:SerialNo></pskc:DeviceInfo>
    <pskc:Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret><pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</pskc:PlainValue></pskc:Secret>
        <pskc:Counter><pskc:PlainValue>0</pskc:PlainValue></pskc:Counter>
      </pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>"#;
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].serial.as_str(), "987654321");
        assert_eq!(r[0].kind, Kind::Hotp);
        assert_eq!(r[0].digits, 8);
        assert_eq!(r[0].secret.expose(), b"12345678901234567890");
    }

    #[test]
    fn csv_vendor_layout_and_comments() {
        let text = "serial,seed,type,digits,step\nGAHT00000002, 3132333435363738393031323334353637383930 ,TOTP,6,30 # a comment\n\n# note\nC200000000009,3132333435363738393031323334353637383930,totp,6,60\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].kind, Kind::Totp { period: 60 });
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases: &[(&str, usize)] = &[
            ("GAHT00000001,zz,TOTP,6,30\n", 1),
            ("GAHT00000001,3132,TOTP,11,30\n", 1),
            ("GAHT00000001,3132,TOTP,6,0\n", 1),
            ("\nGAHT00000001,3132,FOO,6,30\n", 2),
            ("short,3132,TOTP,6,30\n", 1),
            ("GAHT00000001\n", 1),
            ("GAHT00000001,3132,TOTP,6,abc\n", 1),
        ];
        for (text, line) in cases {
            match parse(text) {
                Err(SeedFileError::Syntax { line: l, .. }) => assert_eq!(l, *line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(parse("# nothing\n"), Err(SeedFileError::Empty));
        let xml_cases = [
            "<KeyContainer><KeyPackage><Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\"></Key></KeyPackage></KeyContainer>",
            "<KeyContainer><KeyPackage>",
            "<KeyContainer><KeyPackage><DeviceInfo><SerialNo>GAHT00000001</SerialNo></DeviceInfo><Key Algorithm=\"x\"><Data><Secret><PlainValue>AAAA</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>",
            "<KeyContainer><KeyPackage><DeviceInfo><SerialNo>GAHT00000001</SerialNo></DeviceInfo><Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\"><Data><Secret><PlainValue>!!!</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>",
            "<Other/>",
        ];
        for x in xml_cases {
            assert!(
                matches!(parse(x), Err(SeedFileError::Syntax { .. })),
                "{x}: {:?}",
                parse(x)
            );
        }
        assert_eq!(
            parse("<KeyContainer></KeyContainer>"),
            Err(SeedFileError::Empty)
        );
        // An encrypted value without its parts names its key package.
        let x = "<KeyContainer>\n<KeyPackage><DeviceInfo><SerialNo>GAHT00000001</SerialNo></DeviceInfo><Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\"><Data><Secret>\n<EncryptedValue/></Secret></Data></Key></KeyPackage></KeyContainer>";
        match parse(x) {
            Err(SeedFileError::Encrypted {
                line: 3,
                index: 1,
                package_line: 2,
                serial: Some(s),
                problem: EncryptionError::Malformed(m),
            }) => {
                assert_eq!(s, "GAHT00000001");
                assert!(m.contains("EncryptionMethod"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_serials_are_refused() {
        let text = "GAHT00000001,3132,TOTP,6,30\nGAHT00000002,3132,TOTP,6,30\nGAHT00000001,3334,TOTP,6,30\n";
        assert_eq!(
            parse(text),
            Err(SeedFileError::Duplicate {
                serial: "GAHT00000001".into(),
                first_line: 1,
                line: 3
            })
        );
        let mut recs = sample();
        recs.push(sample().remove(0));
        assert!(matches!(
            parse(&write_pskc(&recs)),
            Err(SeedFileError::Duplicate { .. })
        ));
    }

    #[test]
    fn error_messages_never_contain_the_secret() {
        let text = "GAHT00000001,3132333435363738393031323334353637383930,TOTP,6,x\n";
        let msg = parse(text).unwrap_err().to_string();
        assert!(!msg.contains("31323334"), "{msg}");
    }
}

/// RFC 6030's own examples, encrypted round trips and bad encrypted files.
#[cfg(test)]
mod protected_tests {
    use super::protect::Cipher;
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    const RFC_KEY: &str = "12345678901234567890123456789012";
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn fixture(name: &str) -> String {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pskc/rfc6030");
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    fn rfc_key() -> Protection {
        Protection::Key(TransportKey::from_hex(RFC_KEY).unwrap())
    }

    fn qwerty() -> Protection {
        Protection::Password(Password::new("qwerty").unwrap())
    }

    /// Every key package of a file, its values opened, PIN keys included.
    fn packages(text: &str, p: Option<&Protection>) -> Vec<Package> {
        let mut v = Vec::new();
        read_packages(text, p, &mut |pkg| {
            v.push(pkg);
            Ok(())
        })
        .unwrap();
        v
    }

    fn secret(p: &mut Package) -> Vec<u8> {
        p.secret_bytes().unwrap().to_vec()
    }

    fn problem(r: Result<Vec<SeedRecord>, SeedFileError>) -> (usize, usize, EncryptionError) {
        match r {
            Err(SeedFileError::Encrypted {
                line,
                index,
                problem,
                ..
            }) => (line, index, problem),
            other => panic!("expected an encryption error, got {other:?}"),
        }
    }

    fn one_hotp(records: &[SeedRecord], serial: &str, digits: u8) {
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.serial.as_str(), serial);
        assert_eq!(r.kind, Kind::Hotp);
        assert_eq!(r.digits, digits);
        assert_eq!(r.counter, 0);
        assert_eq!(r.algorithm, Algorithm::Sha1);
        assert_eq!(r.secret.expose(), RFC_SECRET);
    }

    #[test]
    fn rfc6030_figure2_basic_container() {
        let text = fixture("figure2.xml");
        let mut p = packages(&text, None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key_id.as_deref(), Some("12345678"));
        assert_eq!(secret(&mut p[0]), b"1234");
        // Its only identifier, Key Id 12345678, is too short for a serial.
        let e = parse(&text).unwrap_err();
        assert!(
            matches!(&e, SeedFileError::Syntax { line: 10, message } if message.contains("serial number must be 9-256")),
            "{e}"
        );
    }

    #[test]
    fn rfc6030_figure3_supplementary_data() {
        one_hotp(&parse(&fixture("figure3.xml")).unwrap(), "987654321", 8);
    }

    #[test]
    fn rfc6030_figure5_secret_with_pin() {
        let text = fixture("figure5.xml");
        let mut p = packages(&text, None);
        assert_eq!(p.len(), 2);
        assert_eq!(secret(&mut p[0]), RFC_SECRET);
        assert!(p[1].is_pin());
        assert_eq!(secret(&mut p[1]), b"1234");
        // The PIN key is not a token.
        one_hotp(&parse(&text).unwrap(), "987654321", 8);
    }

    #[test]
    fn rfc6030_figure6_pre_shared_key() {
        let text = fixture("figure6.xml");
        one_hotp(
            &parse_with(&text, Some(&rfc_key())).unwrap(),
            "987654321",
            8,
        );
        // The MAC key is the one the RFC states.
        let mac_key = Cipher::Cbc(16)
            .decrypt(
                &hex::decode(RFC_KEY).unwrap(),
                &b64_decode("ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX")
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            hex::encode(mac_key.as_slice()),
            "1122334455667788990011223344556677889900"
        );
        // Without the key, or with a password: named, and nothing read.
        let (line, index, p) = problem(parse(&text));
        assert_eq!((line, index), (43, 1));
        assert_eq!(
            p,
            EncryptionError::NoKey {
                field: "Secret",
                needs: "the pre-shared key \"Pre-shared-key\"".into()
            }
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("line 43: KeyPackage 1 (line 27, serial 987654321): Secret is encrypted under the pre-shared key"),
            "{e}"
        );
        assert!(matches!(
            problem(parse_with(&text, Some(&qwerty()))).2,
            EncryptionError::WrongKind {
                given: "password",
                ..
            }
        ));
    }

    #[test]
    fn rfc6030_figure7_password() {
        let text = fixture("figure7.xml");
        one_hotp(&parse_with(&text, Some(&qwerty())).unwrap(), "987654321", 8);
        assert!(matches!(
            problem(parse_with(&text, Some(&rfc_key()))).2,
            EncryptionError::WrongKind {
                given: "pre-shared key",
                ..
            }
        ));
        // A file may not ask for more iterations than the reader allows.
        let capped =
            Protection::Password(Password::new("qwerty").unwrap().with_max_iterations(999));
        let (_, _, p) = problem(parse_with(&text, Some(&capped)));
        assert!(
            matches!(&p, EncryptionError::Malformed(m) if m.contains("above the limit")),
            "{p}"
        );
    }

    #[test]
    fn rfc6030_figure8_asymmetric_is_refused() {
        let text = fixture("figure8.xml");
        for prot in [None, Some(rfc_key())] {
            let (line, _, p) = problem(parse_with(&text, prot.as_ref()));
            assert_eq!(line, 43);
            assert!(
                matches!(&p, EncryptionError::UnknownAlgorithm { what: "EncryptionMethod", uri, .. } if uri.ends_with("#rsa_1_5")),
                "{p}"
            );
        }
    }

    #[test]
    fn rfc6030_figure9_signed_container() {
        let r = parse(&fixture("figure9.xml")).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].serial.as_str(), "0755225266");
        assert_eq!(r[0].digits, 6);
        assert_eq!(r[0].secret.expose(), RFC_SECRET);
    }

    #[test]
    fn rfc6030_figure10_bulk_provisioning() {
        let text = fixture("figure10.xml");
        let mut p = packages(&text, None);
        let serials: Vec<_> = p.iter().map(|p| p.serial.clone().unwrap()).collect();
        assert_eq!(serials, ["654321", "123456", "9999999", "9999999"]);
        for pkg in &mut p {
            assert_eq!(secret(pkg), RFC_SECRET);
        }
        // Six-digit serials are too short for fobsim's (AWS's) serials.
        let e = parse(&text).unwrap_err();
        assert!(
            matches!(&e, SeedFileError::Syntax { line: 9, message } if message.contains("serial number")),
            "{e}"
        );
    }

    fn sample() -> Vec<SeedRecord> {
        let secret = |h: &str| Secret::from_hex(h).unwrap();
        vec![
            SeedRecord {
                serial: Serial::new("GAHT00000001").unwrap(),
                kind: Kind::Totp { period: 30 },
                algorithm: Algorithm::Sha1,
                digits: 6,
                secret: secret("3132333435363738393031323334353637383930"),
                counter: 0,
            },
            SeedRecord {
                serial: Serial::new("OTPD800000001").unwrap(),
                kind: Kind::Totp { period: 60 },
                algorithm: Algorithm::Sha256,
                digits: 8,
                secret: secret("3132333435363738393031323334353637383930313233343536373839303132"),
                counter: 0,
            },
            SeedRecord {
                serial: Serial::new("C100000000001").unwrap(),
                kind: Kind::Hotp,
                algorithm: Algorithm::Sha1,
                digits: 6,
                secret: secret("0102030405"),
                counter: 17,
            },
        ]
    }

    fn fast_password(text: &str) -> Protection {
        Protection::Password(Password::new(text).unwrap().with_iterations(10).unwrap())
    }

    fn cipher_values(text: &str) -> Vec<String> {
        text.split("<xenc:CipherValue>")
            .skip(1)
            .map(|s| s.split('<').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn written_files_read_back_under_both_kinds() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for prot in [
            rfc_key(),
            Protection::Key(TransportKey::new(vec![9; 24]).unwrap()),
            Protection::Key(TransportKey::new(vec![9; 32]).unwrap()),
            fast_password("correct horse"),
        ] {
            let text = write_pskc_protected(&sample(), &prot, &mut rng);
            assert!(!text.contains("PlainValue>MTIz"), "no plain secret");
            assert_eq!(
                parse_with(&text, Some(&prot)).unwrap(),
                sample(),
                "{}",
                prot.kind()
            );
            // Fresh IVs for every value, a fresh MAC key (and salt) per file.
            let again = write_pskc_protected(&sample(), &prot, &mut rng);
            let (a, b) = (cipher_values(&text), cipher_values(&again));
            assert_eq!(a.len(), 4);
            let mut ivs: Vec<_> = a
                .iter()
                .chain(&b)
                .map(|v| b64_decode(v).unwrap()[..16].to_vec())
                .collect();
            ivs.sort();
            ivs.dedup();
            assert_eq!(ivs.len(), 8, "an IV repeated");
            if let Protection::Password(_) = prot {
                let salt = |t: &str| {
                    t.split("<Specified>")
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .to_string()
                };
                assert_ne!(salt(&text), salt(&again));
            }
            // Without the key: refused, naming the first key package.
            assert_eq!(problem(parse(&text)).1, 1);
        }
        // 16-byte keys and passwords give AES-128-CBC, which every importer reads.
        let text = write_pskc_protected(&sample(), &rfc_key(), &mut rng);
        assert!(text.contains(protect::AES128_CBC));
        assert!(text.contains("<ds:KeyName>Pre-shared-key</ds:KeyName>"));
    }

    #[test]
    fn the_key_wraps_are_read() {
        // A file as a vendor using RFC 3394/5649 key wrap would write it: no
        // ValueMAC needed, the wrap checks itself.
        let key = hex::decode(RFC_KEY).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for (uri, secret) in [
            (protect::KW_AES128, &b"1234567890123456"[..]),
            (protect::KWP_AES128, RFC_SECRET),
        ] {
            let c = Cipher::from_uri(uri).unwrap();
            let wrapped = c.encrypt(&key, secret, &mut rng).unwrap();
            let text = format!(
                "<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\" xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\n<KeyPackage><DeviceInfo><SerialNo>GAHT00000009</SerialNo></DeviceInfo>\n<Key Algorithm=\"{PSKC_TOTP}\"><Data><Secret><EncryptedValue><xenc:EncryptionMethod Algorithm=\"{uri}\"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></EncryptedValue></Secret></Data></Key></KeyPackage></KeyContainer>",
                data_encoding::BASE64.encode(&wrapped)
            );
            let r = parse_with(&text, Some(&rfc_key())).unwrap();
            assert_eq!(r[0].secret.expose(), secret, "{uri}");
            let wrong = Protection::Key(TransportKey::new(vec![1; 16]).unwrap());
            assert!(
                matches!(
                    problem(parse_with(&text, Some(&wrong))).2,
                    EncryptionError::WrongKey { what: "Secret", .. }
                ),
                "{uri}"
            );
        }
    }

    #[test]
    fn a_truncated_file_is_refused_wherever_it_ends() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for (text, prot) in [
            (fixture("figure6.xml"), rfc_key()),
            (fixture("figure7.xml"), qwerty()),
            (
                write_pskc_protected(&sample(), &rfc_key(), &mut rng),
                rfc_key(),
            ),
        ] {
            let end = text.rfind("</").unwrap();
            for cut in (0..end).filter(|i| text.is_char_boundary(*i)) {
                let r = parse_with(&text[..cut], Some(&prot));
                assert!(r.is_err(), "cut at {cut} parsed: {r:?}");
            }
        }
    }

    #[test]
    fn a_tampered_mac_or_value_is_refused_before_use() {
        let text = fixture("figure6.xml");
        let tampered = text.replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Tu+NvtQfmvfJzF6bmQiJqoLRExc=",
        );
        let (line, index, p) = problem(parse_with(&tampered, Some(&rfc_key())));
        assert_eq!((line, index), (52, 1));
        assert_eq!(
            p,
            EncryptionError::MacMismatch {
                field: "Secret",
                credential: "pre-shared key"
            }
        );
        // One flipped ciphertext byte: the MAC catches it, not the padding.
        let body = text.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
        assert!(matches!(
            problem(parse_with(&body, Some(&rfc_key()))).2,
            EncryptionError::MacMismatch { .. }
        ));
        // AES-CBC without a ValueMAC.
        let bare = text.replace(
            "<ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=\n                    </ValueMAC>",
            "",
        );
        assert!(matches!(
            problem(parse_with(&bare, Some(&rfc_key()))).2,
            EncryptionError::MacMissing { .. }
        ));
        // In a many-token file the error names the package; nothing is read.
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let written = write_pskc_protected(&sample(), &rfc_key(), &mut rng);
        let macs: Vec<&str> = written
            .split("<pskc:ValueMAC>")
            .skip(1)
            .map(|s| s.split('<').next().unwrap())
            .collect();
        let mut flipped = macs[1].to_string();
        flipped.replace_range(0..1, if flipped.starts_with('A') { "B" } else { "A" });
        let bad = written.replace(macs[1], &flipped);
        let e = parse_with(&bad, Some(&rfc_key())).unwrap_err();
        assert!(
            matches!(e, SeedFileError::Encrypted { index: 2, serial: Some(ref s), .. } if s == "OTPD800000001"),
            "{e}"
        );
        assert!(e.to_string().contains("line 53: KeyPackage 2 (line 36, serial OTPD800000001): Secret: the ValueMAC does not match"), "{e}");
    }

    #[test]
    fn a_wrong_key_or_password_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let six = fixture("figure6.xml");
        let seven = fixture("figure7.xml");
        let written = write_pskc_protected(&sample(), &fast_password("right"), &mut rng);
        for i in 0u8..40 {
            let wrong = Protection::Key(TransportKey::new(vec![i; 16]).unwrap());
            let p = problem(parse_with(&six, Some(&wrong))).2;
            assert!(
                matches!(
                    p,
                    EncryptionError::WrongKey {
                        what: "the MAC key",
                        credential: "pre-shared key",
                        ..
                    } | EncryptionError::MacMismatch { .. }
                ),
                "{p}"
            );
            let pw = Protection::Password(Password::new(&format!("wrong{i}")).unwrap());
            let p = problem(parse_with(&seven, Some(&pw))).2;
            assert!(
                matches!(
                    p,
                    EncryptionError::WrongKey {
                        credential: "password",
                        ..
                    } | EncryptionError::MacMismatch {
                        credential: "password",
                        ..
                    }
                ),
                "{p}"
            );
            assert!(parse_with(&written, Some(&pw)).is_err());
        }
        let e = parse_with(
            &six,
            Some(&Protection::Key(TransportKey::new(vec![0; 16]).unwrap())),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("wrong pre-shared key?") || e.contains("ValueMAC does not match"),
            "{e}"
        );
        // An AES-256 key for an AES-128 file.
        let long = Protection::Key(TransportKey::new(vec![0; 32]).unwrap());
        let p = problem(parse_with(&six, Some(&long))).2;
        assert!(
            matches!(&p, EncryptionError::WrongKey { detail, .. } if detail.contains("16-byte key")),
            "{p}"
        );
    }

    #[test]
    fn unknown_algorithms_are_named() {
        let six = fixture("figure6.xml");
        let cases = [
            (
                six.replacen(
                    "xmlenc#aes128-cbc\"/>\n                        <xenc:CipherData>",
                    "xmlenc#tripledes-cbc\"/>\n                        <xenc:CipherData>",
                    1,
                ),
                "EncryptionMethod",
            ),
            (
                six.replace("xmldsig#hmac-sha1", "xmldsig-more#hmac-sha256"),
                "MACMethod",
            ),
            (
                six.replacen("xmlenc#aes128-cbc", "xmldsig-more#camellia128", 1),
                "MACKey EncryptionMethod",
            ),
        ];
        for (text, what) in cases {
            let p = problem(parse_with(&text, Some(&rfc_key()))).2;
            assert!(
                matches!(&p, EncryptionError::UnknownAlgorithm { what: w, .. } if *w == what),
                "{what}: {p}"
            );
        }
        let seven = fixture("figure7.xml");
        let text = seven.replace("pkcs-5v2-0#pbkdf2", "pkcs-5v2-0#scrypt");
        let p = problem(parse_with(&text, Some(&qwerty()))).2;
        assert!(
            matches!(
                p,
                EncryptionError::UnknownAlgorithm {
                    what: "KeyDerivationMethod",
                    ..
                }
            ),
            "{p}"
        );
        let text = seven.replace(
            "<PRF/>",
            "<PRF Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#hmac-md5\"/>",
        );
        let p = problem(parse_with(&text, Some(&qwerty()))).2;
        assert!(
            matches!(
                p,
                EncryptionError::UnknownAlgorithm {
                    what: "PBKDF2 PRF",
                    ..
                }
            ),
            "{p}"
        );
    }

    #[test]
    fn fobsims_own_files_stay_readable() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pskc/fobsim");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let plain = parse(&read("plain.pskc")).unwrap();
        assert_eq!(plain.len(), 3);
        assert_eq!(plain[1].algorithm, Algorithm::Sha256);
        assert_eq!(plain[2].counter, 5);
        assert_eq!(
            parse_with(&read("key-aes128.pskc"), Some(&rfc_key())).unwrap(),
            plain
        );
        assert_eq!(
            parse_with(&read("password.pskc"), Some(&qwerty())).unwrap(),
            plain
        );
    }

    #[test]
    fn a_key_for_a_plain_file_is_refused() {
        for text in [write_pskc(&sample()), write_csv(&sample())] {
            assert_eq!(
                parse_with(&text, Some(&rfc_key())),
                Err(SeedFileError::NotEncrypted("pre-shared key"))
            );
        }
    }

    fn record() -> impl Strategy<Value = SeedRecord> {
        (
            0u32..1_000_000,
            prop_oneof![
                (1u64..=600).prop_map(|p| Kind::Totp { period: p }),
                Just(Kind::Hotp)
            ],
            prop_oneof![
                Just(Algorithm::Sha1),
                Just(Algorithm::Sha256),
                Just(Algorithm::Sha512)
            ],
            6u8..=8,
            proptest::collection::vec(any::<u8>(), 1..=64),
            any::<u64>(),
        )
            .prop_map(|(n, kind, algorithm, digits, secret, counter)| SeedRecord {
                serial: Serial::new(&format!("FOB{n:09}")).unwrap(),
                kind,
                algorithm,
                digits,
                secret: Secret::new(secret).unwrap(),
                counter: if kind == Kind::Hotp { counter } else { 0 },
            })
    }

    fn codes(r: &SeedRecord) -> Vec<String> {
        match r.kind {
            Kind::Totp { period } => {
                let t = crate::Totp::new(
                    r.algorithm,
                    r.secret.expose(),
                    u32::from(r.digits),
                    period,
                    0,
                )
                .unwrap();
                [0u64, 59, 1_111_111_109, 2_000_000_000]
                    .iter()
                    .map(|s| t.code_at(*s).unwrap().to_string())
                    .collect()
            }
            Kind::Hotp => {
                let h =
                    crate::Hotp::new(r.algorithm, r.secret.expose(), u32::from(r.digits)).unwrap();
                (0..3)
                    .map(|i| h.code(r.counter.wrapping_add(i)).to_string())
                    .collect()
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn encrypted_round_trip_gives_the_same_codes(
            records in proptest::collection::btree_map(0u32..1_000_000, record(), 1..5),
            key_len in prop_oneof![Just(16usize), Just(24), Just(32)],
            key_byte in any::<u8>(),
            password in "[ -~]{1,24}",
            iterations in 1u32..20,
            seed in any::<u64>(),
        ) {
            let records: Vec<SeedRecord> = records
                .into_iter()
                .map(|(n, mut r)| { r.serial = Serial::new(&format!("FOB{n:09}")).unwrap(); r })
                .collect();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            for prot in [
                Protection::Key(TransportKey::new(vec![key_byte; key_len]).unwrap()),
                Protection::Password(Password::new(&password).unwrap().with_iterations(iterations).unwrap()),
            ] {
                let text = write_pskc_protected(&records, &prot, &mut rng);
                let back = parse_with(&text, Some(&prot)).unwrap();
                prop_assert_eq!(&back, &records);
                for (a, b) in records.iter().zip(&back) {
                    prop_assert_eq!(codes(a), codes(b));
                }
            }
        }
    }
}
