use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn shared_dir(root: &Path, name: &str, mode: u32) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// Gives `path` to user `nobody`; `false` where the tests do not run as root.
fn give_away(path: &Path) -> bool {
    std::os::unix::fs::lchown(path, Some(65534), Some(65534)).is_ok()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn private_files_are_0600_in_new_0700_directories() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("a/b/secret");
    write_private(&path, b"s3cret").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"s3cret");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&root.path().join("a/b")), 0o700);
    assert_eq!(mode(&root.path().join("a")), 0o700);
    // Replacing keeps the mode and leaves no temporary file behind.
    write_private(&path, b"again").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"again");
    assert_eq!(entries(&root.path().join("a/b")), ["secret"]);
}

#[test]
fn a_planted_symlink_is_refused_and_nothing_is_written_through_it() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("victim");
    fs::write(&elsewhere, "untouched").unwrap();
    // A sticky shared directory (like /tmp) and a private one: a link is refused in both.
    for (name, dir_mode) in [("sticky", 0o1777), ("private", 0o700)] {
        let dir = shared_dir(root.path(), name, dir_mode);
        let link = dir.join("session.yaml");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = write_private(&link, b"token").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(entries(&dir), ["session.yaml"], "no temporary file is left");

        let err = read_no_follow(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = open_private(&link, false).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(create_new_private(&link).is_err());
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
    }
}

#[test]
fn a_directory_others_can_write_without_the_sticky_bit_is_refused() {
    let root = tempfile::tempdir().unwrap();
    for dir_mode in [0o777, 0o770, 0o707] {
        let dir = shared_dir(root.path(), &format!("shared-{dir_mode:o}"), dir_mode);
        let path = dir.join("session.yaml");
        let err = write_private(&path, b"token").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("no sticky bit"), "{err}");
        assert!(
            entries(&dir).is_empty(),
            "nothing written: {:?}",
            entries(&dir)
        );
    }
}

#[test]
fn in_a_sticky_shared_directory_our_own_file_is_replaced_not_written_into() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "tmp", 0o1777);
    let path = dir.join("session.yaml");
    fs::write(&path, "old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(&path).unwrap().ino();
    write_private(&path, b"token").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"token");
    assert_eq!(mode(&path), 0o600);
    assert_ne!(
        fs::metadata(&path).unwrap().ino(),
        before,
        "a new file, so whoever held the old one open reads nothing new"
    );
}

#[test]
fn a_file_or_directory_of_another_user_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "tmp", 0o1777);
    let path = dir.join("session.yaml");
    fs::write(&path, "theirs").unwrap();
    if !give_away(&path) {
        eprintln!("not root: cannot make a file of another user; skipped");
        return;
    }
    let err = write_private(&path, b"token").unwrap_err();
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");

    let theirs = shared_dir(root.path(), "theirs", 0o755);
    assert!(give_away(&theirs));
    let err = write_private(&theirs.join("session.yaml"), b"token").unwrap_err();
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    assert!(entries(&theirs).is_empty());
}

#[test]
fn replace_file_sets_the_mode_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("gateway.crt");
    replace_file(&path, b"CERT", 0o644).unwrap();
    assert_eq!(mode(&path), 0o644);
    let log = root.path().join("audit.jsonl");
    open_private(&log, false)
        .unwrap()
        .write_all(b"one\n")
        .unwrap();
    open_private(&log, false)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    assert_eq!(fs::read(&log).unwrap(), b"one\ntwo\n");
    assert_eq!(mode(&log), 0o600);
    assert_eq!(read_no_follow(&root.path().join("none")).unwrap(), None);
}

#[test]
fn a_key_file_may_be_roots_and_readable_by_its_group_only() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("root.key");
    fs::write(&key, b"key").unwrap();
    let set = |mode| fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
    let judged = || key_file_shared_mode(&fs::metadata(&key).unwrap());
    set(0o600);
    assert_eq!(judged(), None);
    // Writable by the group, or readable by others: refused whoever owns it.
    for refused in [0o460, 0o444, 0o640 | 0o004] {
        set(refused);
        assert_eq!(judged(), Some(refused), "{refused:o}");
    }
    // Group-readable: a mounted secret when root owns it, refused otherwise.
    set(0o440);
    let roots = fs::metadata(&key).unwrap().uid() == 0;
    assert_eq!(judged(), (!roots).then_some(0o440));
    if roots && give_away(&key) {
        assert_eq!(judged(), Some(0o440), "not root's any more");
    }
    // The plain check keeps refusing group bits (data directories, other files).
    assert_eq!(shared_mode(&fs::metadata(&key).unwrap()), Some(0o440));
}
