//! Vendor seed files: how a token's secret reaches a verification engine.
//!
//! Two formats, parse and emit over strings (no IO):
//! - **PSKC** (RFC 6030) with plain values: `KeyContainer/KeyPackage/Key`
//!   with `DeviceInfo/SerialNo`, `Algorithm` = `…:pskc:hotp` or `…:pskc:totp`,
//!   `AlgorithmParameters/ResponseFormat@Length`, optional
//!   `AlgorithmParameters/Suite` (`HMAC-SHA1|HMAC-SHA256|HMAC-SHA512`),
//!   `Data/Secret/PlainValue` (base64), `Data/Counter`, `Data/TimeInterval`.
//!   Encrypted values are refused with a clear error.
//! - **CSV**, the common vendor layout `serial,hexseed,TOTP,digits,step`
//!   (`HOTP` rows may give the counter as the 5th field); an optional 6th
//!   field names the hash (`sha1`, `sha256`, `sha512`). `#` starts a comment.
//!
//! A serial may appear only once per file.

use std::collections::HashMap;
use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::{Algorithm, Kind, Secret, SeedRecord, Serial};

/// PSKC algorithm URI of HOTP (RFC 6030 §10).
pub const PSKC_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
/// PSKC algorithm URI of TOTP, as vendors and privacyIDEA write it.
pub const PSKC_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
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
///
/// # Errors
/// [`SeedFileError`] with the line of the first problem.
pub fn parse(text: &str) -> Result<Vec<SeedRecord>, SeedFileError> {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') {
        parse_pskc(text)
    } else {
        parse_csv(text)
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
        let serial = xml_escape(r.serial.as_str());
        let uri = match r.kind {
            Kind::Totp { .. } => PSKC_TOTP,
            Kind::Hotp => PSKC_HOTP,
        };
        let _ = writeln!(s, "  <KeyPackage>");
        let _ = writeln!(s, "    <DeviceInfo>");
        let _ = writeln!(s, "      <Manufacturer>fobsim</Manufacturer>");
        let _ = writeln!(s, "      <SerialNo>{serial}</SerialNo>");
        let _ = writeln!(s, "    </DeviceInfo>");
        let _ = writeln!(s, "    <Key Id=\"{serial}\" Algorithm=\"{uri}\">");
        let _ = writeln!(s, "      <Issuer>fobsim</Issuer>");
        let _ = writeln!(s, "      <AlgorithmParameters>");
        let _ = writeln!(
            s,
            "        <Suite>HMAC-{}</Suite>",
            r.algorithm.as_str().to_ascii_uppercase()
        );
        let _ = writeln!(
            s,
            "        <ResponseFormat Length=\"{}\" Encoding=\"DECIMAL\"/>",
            r.digits
        );
        let _ = writeln!(s, "      </AlgorithmParameters>");
        let _ = writeln!(s, "      <Data>");
        let _ = writeln!(
            s,
            "        <Secret><PlainValue>{}</PlainValue></Secret>",
            data_encoding::BASE64.encode(r.secret.expose())
        );
        match r.kind {
            Kind::Totp { period } => {
                let _ = writeln!(s, "        <Time><PlainValue>0</PlainValue></Time>");
                let _ = writeln!(
                    s,
                    "        <TimeInterval><PlainValue>{period}</PlainValue></TimeInterval>"
                );
            }
            Kind::Hotp => {
                let _ = writeln!(
                    s,
                    "        <Counter><PlainValue>{}</PlainValue></Counter>",
                    r.counter
                );
            }
        }
        let _ = writeln!(s, "      </Data>");
        let _ = writeln!(s, "    </Key>");
        let _ = writeln!(s, "  </KeyPackage>");
    }
    s.push_str("</KeyContainer>\n");
    s
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
    secret_b64: Option<String>,
    counter: Option<String>,
    period: Option<String>,
}

impl Pending {
    fn finish(self) -> Result<SeedRecord, SeedFileError> {
        let line = self.line;
        let serial_text = self.serial.or(self.key_id).ok_or_else(|| {
            syntax(
                line,
                "KeyPackage has neither DeviceInfo/SerialNo nor Key@Id",
            )
        })?;
        let serial = Serial::new(serial_text.trim()).map_err(|e| syntax(line, e.to_string()))?;
        let uri = self
            .algorithm_uri
            .ok_or_else(|| syntax(line, "Key has no Algorithm attribute"))?;
        let b64 = self
            .secret_b64
            .ok_or_else(|| syntax(line, "Key has no Data/Secret/PlainValue"))?;
        let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = data_encoding::BASE64
            .decode(cleaned.as_bytes())
            .map_err(|_| syntax(line, "Data/Secret/PlainValue is not valid base64"))?;
        let secret = Secret::new(bytes).map_err(|e| syntax(line, e.to_string()))?;
        let digits = match self.digits {
            Some(d) => d.trim().parse::<u32>().map_err(|_| {
                syntax(line, format!("ResponseFormat Length {d:?} is not a number"))
            })?,
            None => 6,
        };
        let digits = crate::check_digits(digits).map_err(|e| syntax(line, e.to_string()))?;
        let algorithm = match self.suite {
            Some(s) => s
                .trim()
                .parse()
                .map_err(|e: crate::OtpError| syntax(line, e.to_string()))?,
            None => Algorithm::Sha1,
        };
        let num = |v: Option<String>, what: &str, default: u64| -> Result<u64, SeedFileError> {
            match v {
                Some(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| syntax(line, format!("{what} {s:?} is not a number"))),
                None => Ok(default),
            }
        };
        let lower = uri.trim().to_ascii_lowercase();
        let (kind, counter) = if lower.ends_with(":totp") || lower.ends_with("#totp") {
            let period = num(self.period, "TimeInterval", 30)?;
            if period == 0 {
                return Err(syntax(line, "TimeInterval must be at least 1 second"));
            }
            (Kind::Totp { period }, 0)
        } else if lower.ends_with(":hotp") || lower.ends_with("#hotp") {
            (Kind::Hotp, num(self.counter, "Counter", 0)?)
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

/// Parse PSKC (RFC 6030) with plain values.
///
/// # Errors
/// [`SeedFileError`] for malformed XML, encrypted values, missing or invalid
/// fields, duplicate serials, or no key packages.
pub fn parse_pskc(text: &str) -> Result<Vec<SeedRecord>, SeedFileError> {
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
    let mut current: Option<Pending> = None;
    let mut out: Vec<(usize, SeedRecord)> = Vec::new();
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
                            p.algorithm_uri = attrs.get("Algorithm").cloned();
                        }
                    }
                    "ResponseFormat" => {
                        if let Some(p) = current.as_mut() {
                            p.digits = attrs.get("Length").cloned();
                        }
                    }
                    "EncryptedValue" | "EncryptionKey" => {
                        return Err(syntax(
                            line,
                            "encrypted PSKC values are not supported; export with plain values",
                        ));
                    }
                    _ => {}
                }
                text_buf.clear();
                // A self-closing element has no end tag.
                if !self_closing {
                    path.push(name);
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
                if let Some(p) = current.as_mut() {
                    let parent = path
                        .len()
                        .checked_sub(2)
                        .and_then(|i| path.get(i))
                        .map(String::as_str);
                    match (parent, name.as_str()) {
                        (Some("DeviceInfo"), "SerialNo") => p.serial = Some(value),
                        (Some("AlgorithmParameters"), "Suite") => p.suite = Some(value),
                        (Some("Secret"), "PlainValue") => p.secret_b64 = Some(value),
                        (Some("Counter"), "PlainValue") => p.counter = Some(value),
                        (Some("TimeInterval"), "PlainValue") => p.period = Some(value),
                        _ => {}
                    }
                }
                if name == "KeyPackage"
                    && let Some(p) = current.take()
                {
                    let l = p.line;
                    out.push((l, p.finish()?));
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
    check_duplicates(&out)?;
    if out.is_empty() {
        return Err(SeedFileError::Empty);
    }
    Ok(out.into_iter().map(|(_, r)| r).collect())
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
            "<KeyContainer><KeyPackage><DeviceInfo><SerialNo>GAHT00000001</SerialNo></DeviceInfo><Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\"><Data><Secret><EncryptedValue/></Secret></Data></Key></KeyPackage></KeyContainer>",
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
