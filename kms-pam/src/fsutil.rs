//! Files only their owner may read (mode 0600) in directories only their owner may enter (0700):
//! the one place every writer of tokens, keys, kubeconfigs, spools and audit logs goes through.
//!
//! A file holding a secret may be asked for in a directory other users can write (`--kubeconfig
//! /tmp/x.yaml`, a shared project directory). There, another user could have planted a symbolic
//! link at the name (a writer that follows it writes the secret wherever the link points), or
//! created the file first (a writer that opens it writes into a file its creator still owns and
//! can read). So [`write_private`] never opens the target: it refuses a directory that others may
//! write without the sticky bit or that belongs to another user, refuses a target that is a link
//! or belongs to another user, writes a new temporary file beside it (`O_CREAT|O_EXCL|O_NOFOLLOW`,
//! 0600) and renames that over the target. Files that must be opened in place (a log appended to,
//! a fresh segment) are opened with `O_NOFOLLOW`.
//!
//! Errors are `io::Error`s whose message says which path is refused and why; refusals have kind
//! [`io::ErrorKind::PermissionDenied`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Mode of a private file.
const FILE_MODE: u32 = 0o600;
/// Mode of a private directory.
const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700. Existing directories are left as they
/// are (see [`restrict_dir`]).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Narrows an existing directory that belongs to kms-pam alone (its config or data directory)
/// to mode 0700.
pub fn restrict_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates a new file with mode 0600 for writing; fails if anything (a file, a link) already
/// has the name.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_no_follow(&mut options, FILE_MODE);
    options.open(path).map_err(|e| no_link(e, path))
}

/// Opens `path` for writing, created with mode 0600 if missing, emptied if `truncate`, else
/// appended to; never through a symbolic link.
pub fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    options.create(true);
    private_no_follow(&mut options, FILE_MODE);
    options.open(path).map_err(|e| no_link(e, path))
}

/// Makes a directory's entries (a new or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The mode of a file that group or others may use (`mode & 0o777`, for the refusal to name),
/// `None` when it is its owner's alone (or the platform has no Unix modes): a key file is
/// refused unless this is `None`.
pub(crate) fn shared_mode(meta: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// [`shared_mode`] for a key file, which may also be a secret root mounted read-only for its
/// group: owned by root, writable by nobody but root, readable by no one outside its group.
/// That is how Kubernetes mounts a Secret for a pod's `fsGroup` (mode 0440) and how an
/// administrator hands a service a key through a group; only root can have made it so.
pub(crate) fn key_file_shared_mode(meta: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if meta.uid() == 0 && mode & 0o037 == 0 {
            return None;
        }
    }
    shared_mode(meta)
}

/// Reads a file, `None` when it does not exist; refuses to read through a symbolic link.
pub fn read_no_follow(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    match options.open(path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(no_link(e, path)),
    }
}

/// Writes `contents` to `path` with mode 0600, replacing the file atomically, creating missing
/// directories with mode 0700. Refusals are described in the module docs.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_file(path, contents, FILE_MODE)
}

/// [`write_private`] with another final mode, for files that are not secret (a certificate,
/// 0644) or that get their earlier mode back.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    create_private_dir(&dir)?;
    let (temp_path, mut temp) = create_temp_beside(&dir, path)?;
    let written = (|| {
        // Our own new file tells which user we are, without unsafe code.
        let me = owner(&temp.metadata()?);
        check_dir(&dir, path, me)?;
        check_target(path, me)?;
        temp.write_all(contents)?;
        set_mode(&temp, mode)?;
        temp.sync_all()?;
        fs::rename(&temp_path, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
        return written;
    }
    // The rename is durable once the directory is; a failure here loses nothing written.
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The directory a file is written in (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `.NAME.RANDOM.tmp` beside the target, created exclusively.
fn create_temp_beside(dir: &Path, path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    for _ in 0..8 {
        let mut random = [0u8; 8];
        crate::secret::fill_random(&mut random).map_err(io::Error::other)?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let temp_path = dir.join(format!(".{name}.{suffix}.tmp"));
        match create_new_private(&temp_path) {
            Ok(file) => return Ok((temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("cannot create a temporary file in {}", dir.display()),
    ))
}

/// A directory others may write without the sticky bit lets them swap the file after the
/// checks; one owned by another user (root aside) is theirs to change at will.
fn check_dir(dir: &Path, path: &Path, me: Option<u32>) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(dir)?;
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(refused(format!(
                "refusing to write {}: its directory {} is writable by other users (mode {:o}) \
                 and has no sticky bit, so they could replace the file; choose a private \
                 directory or run `chmod go-w {}`",
                path.display(),
                dir.display(),
                mode & 0o7777,
                dir.display()
            )));
        }
        let dir_owner = owner(&meta);
        if dir_owner != me && dir_owner != Some(0) {
            return Err(refused(format!(
                "refusing to write {}: its directory {} belongs to another user (uid {}); \
                 choose a directory of your own",
                path.display(),
                dir.display(),
                dir_owner.unwrap_or_default()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, path, me);
    Ok(())
}

/// The target may be absent or a regular file of ours; never a link or someone else's file.
fn check_target(path: &Path, me: Option<u32>) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Err(link_refused(path));
    }
    if !meta.is_file() {
        return Err(refused(format!(
            "refusing to write {}: it exists and is not a regular file",
            path.display()
        )));
    }
    let file_owner = owner(&meta);
    if file_owner != me {
        return Err(refused(format!(
            "refusing to write {}: the file belongs to another user (uid {}), who could read \
             what is written; remove it or choose another path",
            path.display(),
            file_owner.unwrap_or_default()
        )));
    }
    Ok(())
}

fn link_refused(path: &Path) -> io::Error {
    refused(format!(
        "refusing to use {}: it is a symbolic link, which kms-pam never follows for private \
         files (another user may have planted it); remove it or give the real path",
        path.display()
    ))
}

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, message)
}

/// `O_NOFOLLOW` makes `open` fail with `ELOOP` on a link: say so in words.
fn no_link(error: io::Error, path: &Path) -> io::Error {
    #[cfg(unix)]
    if error.raw_os_error() == Some(libc::ELOOP) {
        return link_refused(path);
    }
    #[cfg(not(unix))]
    let _ = path;
    error
}

fn private_no_follow(options: &mut OpenOptions, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = (options, mode);
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode);
    Ok(())
}

fn owner(meta: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        Some(std::os::unix::fs::MetadataExt::uid(meta))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

#[cfg(test)]
mod tests;
