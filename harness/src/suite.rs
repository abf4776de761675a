//! The built-in conformance suite (embedded at build time from
//! `fixtures/scenarios/`) and loading scenario files from disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::scenario::{ParseError, Scenario, parse};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/suite.rs"));
}

/// Extension of scenario files.
pub const EXTENSION: &str = "scenario";

/// Errors loading scenarios.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// A file or directory could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A scenario file is malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Two scenarios share an id.
    #[error("{second}: scenario id {id:?} is already used by {first}")]
    DuplicateId {
        /// The id.
        id: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// A directory holds no scenario files.
    #[error("{path}: no *.{EXTENSION} files here")]
    Empty {
        /// The directory.
        path: String,
    },
}

/// The embedded files: (file name, text), sorted by name.
#[must_use]
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    embedded::FILES
}

fn check_unique(list: &[Scenario]) -> Result<(), SuiteError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for s in list {
        if let Some(first) = seen.insert(&s.id, &s.file) {
            return Err(SuiteError::DuplicateId {
                id: s.id.clone(),
                first: first.to_string(),
                second: s.file.clone(),
            });
        }
    }
    Ok(())
}

/// Parse the built-in suite.
///
/// # Errors
/// [`SuiteError`] if an embedded file is malformed (a build of a broken
/// fixture) or ids repeat.
pub fn builtin() -> Result<Vec<Scenario>, SuiteError> {
    let list = builtin_files()
        .iter()
        .map(|(name, text)| parse(&format!("fixtures/scenarios/{name}"), text))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(&list)?;
    Ok(list)
}

/// Load scenario files and directories (a directory means its
/// `*.scenario` files, sorted by name). All files are parsed before any
/// runs: one malformed file fails the whole load.
///
/// # Errors
/// [`SuiteError`] for unreadable paths, malformed files or repeated ids.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, SuiteError> {
    let mut files = Vec::new();
    for p in paths {
        let io = |e: std::io::Error| SuiteError::Io {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == EXTENSION))
                .collect();
            if found.is_empty() {
                return Err(SuiteError::Empty {
                    path: p.display().to_string(),
                });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut list = Vec::new();
    for f in &files {
        list.push(load_file(f)?);
    }
    check_unique(&list)?;
    Ok(list)
}

/// Load one scenario file.
///
/// # Errors
/// [`SuiteError::Io`] or [`SuiteError::Parse`].
pub fn load_file(path: &Path) -> Result<Scenario, SuiteError> {
    let text = std::fs::read(path).map_err(|e| SuiteError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8(text).map_err(|e| SuiteError::Io {
        path: path.display().to_string(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    Ok(parse(&path.display().to_string(), &text)?)
}
