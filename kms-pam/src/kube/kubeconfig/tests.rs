use std::os::unix::fs::PermissionsExt;

use super::*;

fn session(account: &str) -> SessionKubeconfig {
    SessionKubeconfig::new(
        "prod-k8s",
        account,
        "https://127.0.0.1:40123".to_owned(),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        Secret::new("local-token-123"),
    )
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn yaml(path: &Path) -> yaml_serde::Value {
    yaml_serde::from_slice(&fs::read(path).unwrap()).unwrap()
}

const USER_CONFIG: &str = "\
# my clusters, hand-written
apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: 'https://dev.example:6443'}
users:
- name: dev
  user: {token: dev-token}
contexts:
- name: dev
  context: {cluster: dev, user: dev, namespace: team}
current-context: dev
preferences: {}
";

#[test]
fn session_file_points_at_the_local_proxy_with_its_ca_and_token() {
    let config = session("admin");
    let doc: yaml_serde::Value = yaml_serde::from_str(&config.to_yaml().unwrap()).unwrap();
    let name = "kms-pam/prod-k8s/admin";
    assert_eq!(doc["current-context"].as_str(), Some(name));
    assert_eq!(doc["clusters"][0]["name"].as_str(), Some(name));
    let cluster = &doc["clusters"][0]["cluster"];
    assert_eq!(cluster["server"].as_str(), Some("https://127.0.0.1:40123"));
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), config.ca_pem);
    assert_eq!(
        doc["users"][0]["user"]["token"].as_str(),
        Some("local-token-123")
    );
    let context = &doc["contexts"][0];
    assert_eq!(context["name"].as_str(), Some(name));
    assert_eq!(context["context"]["cluster"].as_str(), Some(name));
    assert_eq!(context["context"]["user"].as_str(), Some(name));
    assert!(!format!("{config:?}").contains("local-token-123"));
}

#[test]
fn session_file_is_private_and_removed_only_while_still_ours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kube/kms-pam/prod-k8s-admin.yaml");
    let target = KubeconfigTarget::File(path.clone());
    let installed = InstalledKubeconfig::install(&target, &session("admin")).unwrap();
    assert_eq!(installed.path(), path);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    installed.remove().unwrap();
    assert!(!path.exists());

    // A second session to the same account replaced the file: the first one leaves it alone.
    let first = InstalledKubeconfig::install(&target, &session("admin")).unwrap();
    let mut other = session("admin");
    other.server = "https://127.0.0.1:40999".to_owned();
    let second = InstalledKubeconfig::install(&target, &other).unwrap();
    first.remove().unwrap();
    assert!(path.exists());
    second.remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn an_existing_world_readable_file_is_narrowed_before_the_token_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.yaml");
    fs::write(&path, "old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let target = KubeconfigTarget::File(path.clone());
    InstalledKubeconfig::install(&target, &session("admin")).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("local-token-123"));
}

#[test]
fn merge_then_restore_gives_back_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, USER_CONFIG).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

    let merged = MergedKubeconfig::merge(&path, &session("admin")).unwrap();
    let doc = yaml(&path);
    assert_eq!(
        doc["current-context"].as_str(),
        Some("kms-pam/prod-k8s/admin")
    );
    assert_eq!(doc["contexts"].as_sequence().unwrap().len(), 2);
    assert_eq!(
        doc["contexts"][0]["context"]["namespace"].as_str(),
        Some("team")
    );
    assert_eq!(mode(&path), 0o600, "it holds the session's token now");

    merged.restore().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), USER_CONFIG);
    assert_eq!(
        mode(&path),
        0o640,
        "its own mode comes back with its contents"
    );
}

#[test]
fn restore_after_someone_else_edited_removes_only_our_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, USER_CONFIG).unwrap();
    let admin = MergedKubeconfig::merge(&path, &session("admin")).unwrap();
    let viewer = MergedKubeconfig::merge(&path, &session("viewer")).unwrap();

    admin.restore().unwrap();
    let doc = yaml(&path);
    let names: Vec<_> = doc["contexts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev", "kms-pam/prod-k8s/viewer"]);
    assert_eq!(
        doc["current-context"].as_str(),
        Some("kms-pam/prod-k8s/viewer")
    );

    viewer.restore().unwrap();
    let doc = yaml(&path);
    assert_eq!(doc["contexts"].as_sequence().unwrap().len(), 1);
    assert_eq!(doc["users"][0]["user"]["token"].as_str(), Some("dev-token"));
    // viewer's previous context was admin's, which is gone; kubectl must not be left on it.
    assert!(doc.get("current-context").is_none());
}

#[test]
fn restore_puts_back_the_previous_context_when_the_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, USER_CONFIG).unwrap();
    let merged = MergedKubeconfig::merge(&path, &session("admin")).unwrap();
    let mut edited = fs::read_to_string(&path).unwrap();
    edited.push_str("extensions: []\n");
    fs::write(&path, edited).unwrap();

    merged.restore().unwrap();
    let doc = yaml(&path);
    assert_eq!(doc["current-context"].as_str(), Some("dev"));
    assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 1);
    assert!(doc.get("extensions").is_some());
}

#[test]
fn merging_into_a_missing_file_creates_it_private_and_restore_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/.kube/config");
    let merged = MergedKubeconfig::merge(&path, &session("admin")).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(yaml(&path)["kind"].as_str(), Some("Config"));
    merged.restore().unwrap();
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_a_kubeconfig_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    for contents in ["- just\n- a list\n", "clusters: 3\n", "{unclosed"] {
        fs::write(&path, contents).unwrap();
        let err = MergedKubeconfig::merge(&path, &session("admin")).unwrap_err();
        assert!(
            matches!(err, KubeconfigError::Invalid { .. }),
            "{contents}: {err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), contents);
    }
}

/// A directory like /tmp (sticky) or a careless shared one (0777), as another user would find it.
fn shared_dir(root: &Path, name: &str, dir_mode: u32) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).unwrap();
    dir
}

fn targets(path: &Path) -> [KubeconfigTarget; 2] {
    [
        KubeconfigTarget::File(path.to_owned()),
        KubeconfigTarget::Merge(path.to_owned()),
    ]
}

#[test]
fn a_symlink_planted_where_the_kubeconfig_goes_is_refused_and_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "tmp", 0o1777);
    let stolen = root.path().join("attacker-reads-this");
    fs::write(&stolen, "").unwrap();
    let path = dir.join("kubeconfig.yaml");
    std::os::unix::fs::symlink(&stolen, &path).unwrap();
    for target in targets(&path) {
        let err = InstalledKubeconfig::install(&target, &session("admin")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&stolen).unwrap(), "", "{target:?}");
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn a_directory_others_can_write_is_refused_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "shared", 0o777);
    let path = dir.join("kubeconfig.yaml");
    for target in targets(&path) {
        let err = InstalledKubeconfig::install(&target, &session("admin")).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "{target:?}");
    }
    // A file the user created there earlier is not written into either.
    fs::write(&path, USER_CONFIG).unwrap();
    for target in targets(&path) {
        assert!(InstalledKubeconfig::install(&target, &session("admin")).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), USER_CONFIG);
    }
}

#[test]
fn a_file_another_user_created_first_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "tmp", 0o1777);
    let path = dir.join("kubeconfig.yaml");
    fs::write(&path, USER_CONFIG).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
        eprintln!("not root: cannot make a file of another user; skipped");
        return;
    }
    for target in targets(&path) {
        let err = InstalledKubeconfig::install(&target, &session("admin")).unwrap_err();
        assert!(err.to_string().contains("belongs to another user"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), USER_CONFIG);
    }
}

#[test]
fn in_a_sticky_directory_the_users_own_file_is_replaced_with_a_private_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = shared_dir(root.path(), "tmp", 0o1777);
    let path = dir.join("kubeconfig.yaml");
    fs::write(&path, USER_CONFIG).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let merged = MergedKubeconfig::merge(&path, &session("admin")).unwrap();
    assert_eq!(mode(&path), 0o600);
    merged.restore().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), USER_CONFIG);
    let installed =
        InstalledKubeconfig::install(&KubeconfigTarget::File(path.clone()), &session("admin"))
            .unwrap();
    assert_eq!(mode(&path), 0o600);
    installed.remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn names_become_safe_file_names() {
    assert_eq!(file_safe("prod-k8s"), "prod-k8s");
    assert_eq!(file_safe("../etc/passwd"), "_etc_passwd");
    assert_eq!(file_safe("a b/c"), "a_b_c");
    assert_eq!(context_name("prod", "admin"), "kms-pam/prod/admin");
}
