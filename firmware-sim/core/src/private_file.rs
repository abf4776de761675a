//! Files that hold secrets (seed files, key and password files, database
//! keys, bootstrap files with access keys), written and read the way ssh
//! treats a private key:
//!
//! - written **new** with mode 0600: into a temporary file created with
//!   `O_EXCL` in the same directory, synced, then renamed into place (or,
//!   for [`create_new`], linked: it never replaces anything). A reader never
//!   sees half a file, and the secret is never in a file others may read,
//!   not even for a moment;
//! - an **existing** file is replaced only if it is a regular file that
//!   only its owner may access: a symlink is refused (writing through it
//!   would put the secret wherever it points), and so is a file group or
//!   others may read (its old mode says somebody meant to share it);
//! - read only if its owner alone may access it ([`check`]).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Group or others may access the file.
    #[error(
        "{}: permissions {mode:04o} are too open: a file that holds secrets must be accessible by its owner only (chmod 600 {})",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is a symlink (never written through).
    #[error("{}: is a symlink: a file that holds secrets is never written through a link (remove it, or name its target)", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl PrivateFileError {
    /// The file concerned.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            PrivateFileError::TooOpen { path, .. }
            | PrivateFileError::Symlink { path }
            | PrivateFileError::NotAFile { path }
            | PrivateFileError::Io { path, .. } => path,
        }
    }
}

impl From<PrivateFileError> for io::Error {
    fn from(e: PrivateFileError) -> Self {
        let kind = match &e {
            PrivateFileError::TooOpen { .. } | PrivateFileError::Symlink { .. } => {
                io::ErrorKind::PermissionDenied
            }
            PrivateFileError::NotAFile { .. } => io::ErrorKind::InvalidInput,
            PrivateFileError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e.to_string())
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn too_open(path: &Path, meta: &std::fs::Metadata) -> Result<(), PrivateFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(PrivateFileError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// Check a secret file before reading it: a regular file (a symlink is
/// followed, as ssh does) that group and others may not access.
///
/// # Errors
/// [`PrivateFileError::TooOpen`], [`PrivateFileError::NotAFile`], or
/// [`PrivateFileError::Io`] (e.g. it does not exist).
pub fn check(path: &Path) -> Result<(), PrivateFileError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(PrivateFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    too_open(path, &meta)
}

/// Read a secret file after [`check`]ing it.
///
/// # Errors
/// As [`check`], and read errors.
pub fn read_to_string(path: &Path) -> Result<String, PrivateFileError> {
    check(path)?;
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// Whether an existing `path` may be replaced by a secret: a regular file
/// only its owner may access. `Ok(false)` when there is nothing.
fn replaceable(path: &Path) -> Result<bool, PrivateFileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(PrivateFileError::Symlink {
            path: path.to_path_buf(),
        }),
        Ok(m) if !m.is_file() => Err(PrivateFileError::NotAFile {
            path: path.to_path_buf(),
        }),
        Ok(m) => too_open(path, &m).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A temporary file beside `path`, created with `O_EXCL` (mode 0600),
/// holding `bytes`, synced. Removed on drop unless taken.
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn temp_beside(path: &Path, bytes: &[u8]) -> Result<Temp, PrivateFileError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}-{nanos:x}", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = match opts.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(path)(e)),
        };
        let temp = Temp {
            path: tmp,
            keep: false,
        };
        f.write_all(bytes).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        return Ok(temp);
    }
    Err(io_err(path)(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name beside it",
    )))
}

/// Write the secret `bytes` to `path` (mode 0600), replacing an existing
/// private regular file atomically (see the module docs).
///
/// # Errors
/// [`PrivateFileError::Symlink`], [`PrivateFileError::TooOpen`] or
/// [`PrivateFileError::NotAFile`] for an existing `path` that must not be
/// replaced; [`PrivateFileError::Io`] for IO failures.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), PrivateFileError> {
    replaceable(path)?;
    let mut temp = temp_beside(path, bytes)?;
    std::fs::rename(&temp.path, path).map_err(io_err(path))?;
    temp.keep = true;
    Ok(())
}

/// Create `path` holding the secret `bytes` (mode 0600) if nothing is
/// there yet: `Ok(true)`. If something is (another process may have just
/// made it), it is left alone: `Ok(false)`.
///
/// # Errors
/// [`PrivateFileError::Io`] for IO failures.
pub fn create_new(path: &Path, bytes: &[u8]) -> Result<bool, PrivateFileError> {
    let temp = temp_beside(path, bytes)?;
    match std::fs::hard_link(&temp.path, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_written_new_with_0600_and_replace_only_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seeds.csv");
        write(&p, b"one").unwrap();
        assert_eq!(
            (std::fs::read(&p).unwrap(), mode(&p)),
            (b"one".to_vec(), 0o600)
        );
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Shared on purpose once: never filled with secrets.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = write(&p, b"three").unwrap_err();
        assert!(
            matches!(e, PrivateFileError::TooOpen { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("0644 are too open"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // A symlink: refused, its target untouched.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write(&link, b"secret").unwrap_err();
        assert!(matches!(e, PrivateFileError::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // A dangling symlink too: it would create its target.
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &dangling).unwrap();
        assert!(write(&dangling, b"secret").is_err());
        assert!(!dir.path().join("elsewhere").exists());
        // A directory.
        assert!(matches!(
            write(dir.path(), b"x").unwrap_err(),
            PrivateFileError::NotAFile { .. }
        ));
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn create_new_never_replaces_and_check_refuses_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.key");
        assert!(create_new(&p, b"first").unwrap());
        assert!(!create_new(&p, b"second").unwrap());
        assert_eq!(
            (std::fs::read(&p).unwrap(), mode(&p)),
            (b"first".to_vec(), 0o600)
        );
        check(&p).unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "first");
        for bad in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(bad)).unwrap();
            assert!(matches!(
                check(&p).unwrap_err(),
                PrivateFileError::TooOpen { .. }
            ));
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        check(&p).unwrap();
        assert!(matches!(
            check(dir.path()).unwrap_err(),
            PrivateFileError::NotAFile { .. }
        ));
    }
}
