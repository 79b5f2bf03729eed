//! Files only their owner may read. The database holds the cookies' signing key, every
//! session id and the whispers; the `--secret-file` holds the key alone. Whoever can read
//! either can forge a cookie and post as anyone, so the server makes them owner-only
//! (files `0600`, a directory it creates `0700`) whatever the umask, and refuses to start
//! on one that other users can read or write (the database has one exception, see
//! `engine::embedded::sqlite::SqliteStore::open`).
//!
//! Owner-only means no bit for group or others: a file others may *write* is refused too,
//! since replacing the key is as good as reading it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a directory the server creates for one.
pub const DIR_MODE: u32 = 0o700;

/// The permission bits of `path` if group or others have any access to it; `None` if it is
/// owner-only or does not exist.
pub fn too_open(path: &Path) -> io::Result<Option<u32>> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            Ok((mode & 0o077 != 0).then_some(mode))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Creates `dir` and any missing parent, each `0700` (a directory that exists is left as it
/// is: it may be the operator's own, shared on purpose).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates `path`, which must not exist, as an empty `0600` file; `None` if it exists.
/// The mode is set again after the open, so a umask that takes the owner's own bits away
/// (`0277`) cannot leave the server a file it cannot write.
pub fn create_new(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
            Ok(Some(file))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(err) => Err(err),
    }
}

/// Makes `path` owner-only.
pub fn tighten(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// The start-up error for a file others can read: `what` it is, at `path`, with `mode`;
/// `why` it matters or why the server leaves it alone; and the fix.
pub fn refusal(what: &str, path: &Path, mode: u32, why: &str) -> String {
    format!(
        "{what} {path} can be read or written by other users (mode {mode:04o}); {why}. \
         Make it owner-only with `chmod 600 {path}`, or give the server another path",
        path = path.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_or_other_bits_make_a_file_too_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(too_open(&path).unwrap(), None, "a missing file");
        let file = create_new(&path).unwrap().unwrap();
        drop(file);
        assert!(create_new(&path).unwrap().is_none(), "it exists now");
        assert_eq!(too_open(&path).unwrap(), None);
        for (mode, open) in [(0o640, true), (0o604, true), (0o620, true), (0o400, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(too_open(&path).unwrap(), open.then_some(mode), "{mode:o}");
        }
        tighten(&path).unwrap();
        assert_eq!(too_open(&path).unwrap(), None);
        let message = refusal("the secret file", &path, 0o644, "it holds the key");
        assert!(message.contains("mode 0644"), "{message}");
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
    }

    #[test]
    fn directories_it_creates_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        create_dir(&deep).unwrap();
        for d in [dir.path().join("a"), deep] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, DIR_MODE, "{}", d.display());
        }
    }
}
