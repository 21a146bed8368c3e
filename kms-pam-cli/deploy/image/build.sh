#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016 # `A && B || die` is meant; '${VERSION}' is the literal text
# Builds the two OCI images, kms-pam-gateway and kms-pam, from binaries already built, without a
# container daemon and without pulling a base image: each image is one layer holding a minimal
# root file system staged here, made into an OCI image layout with umoci (Debian's package).
#
#   kms-pam-cli/deploy/image/build.sh [--profile debug|release] [--bin-dir DIR] [--out DIR]
#
# --profile picks target/PROFILE (default debug: what `cargo test --workspace` built);
# --bin-dir names the directory holding kms-pam and kms-pam-gateway instead. Output, under
# --out (default target/images): NAME/oci (the OCI image layout, tagged with the workspace's
# version), NAME/rootfs (the staged root file system) and NAME/Containerfile (the image's
# instructions with the build arguments filled in, which smoke.sh lints).
#
# Each image's configuration comes from its Containerfile (kms-pam-gateway/deploy/image/,
# kms-pam-cli/deploy/image/): FROM scratch, ARG, COPY rootfs/ /, LABEL, ENV, EXPOSE, USER,
# STOPSIGNAL, HEALTHCHECK and ENTRYPOINT, one per line; anything else is refused, so the file
# cannot say what the image does not do. The root file system: the binary in /usr/local/bin,
# the shared libraries `ldd` names and the dynamic loader, /etc/ssl/certs/ca-certificates.crt,
# /etc/passwd and /etc/group with nonroot 65532, /etc/nsswitch.conf, /tmp (1777), nonroot's
# home and the data directory (KMS_PAM_DATA_DIR, owned by the image's user). No shell, no
# package manager.
#
# Runs as root: the layer's files are owned by root and the data directory by 65532.
# Reproducible: the same binaries and commit give the same image digests (timestamps come from
# the commit, or SOURCE_DATE_EPOCH).
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true
# Directories made along the way are 0755, whoever calls.
umask 022

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

die() {
  echo "build.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'
}

profile=debug
bin_dir=""
out="$root/target/images"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs debug or release}; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --bin-dir=*) bin_dir=${1#*=}; shift ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$profile" in
  debug | release) ;;
  *) die "--profile must be debug or release, not $profile" ;;
esac
bin_dir=${bin_dir:-${CARGO_TARGET_DIR:-$root/target}/$profile}

[ "$(id -u)" = 0 ] ||
  die "run as root (e.g. with sudo): the layer's files must be owned by root and the data directory by 65532"
for tool in umoci jq ldd sha256sum cargo git; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (umoci: apt-get install umoci)"
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "$ca_bundle is missing: apt-get install ca-certificates"

metadata=$(cargo metadata --no-deps --format-version 1 --manifest-path "$root/Cargo.toml")
version=$(jq -r '.packages[] | select(.name == "kms-pam-gateway") | .version' <<<"$metadata")
source_url=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^repository *= *"\(.*\)"$/\1/p' "$root/Cargo.toml")
[ -n "$source_url" ] || die "the workspace's Cargo.toml has no [workspace.package] repository for the source label"
revision=$(git -C "$root" rev-parse HEAD)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) die "no OCI architecture name known for $(uname -m)" ;;
esac

# "30s", "5m", "1h" as nanoseconds, as Docker's image configuration counts a healthcheck's times.
duration_ns() {
  local value=$1 number unit
  [[ "$value" =~ ^([0-9]+)(s|m|h)$ ]] || die "healthcheck duration $value: use whole seconds, minutes or hours (30s)"
  number=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[2]}
  case "$unit" in
    s) echo $((number * 1000000000)) ;;
    m) echo $((number * 60000000000)) ;;
    h) echo $((number * 3600000000000)) ;;
  esac
}

# Fills in the build arguments: the Containerfile as built and linted.
render() {
  local template=$1 line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line//'${VERSION}'/"$version"}
    line=${line//'${REVISION}'/"$revision"}
    line=${line//'${SOURCE}'/"$source_url"}
    printf '%s\n' "$line"
  done <"$template"
}

# Reads the rendered Containerfile into the umoci config arguments (config_args), the Docker
# healthcheck object (healthcheck), the user (image_user) and the data directory (data_dir).
parse() {
  local file=$1 line instruction rest number=0 saw_from="" saw_copy=""
  config_args=()
  healthcheck=""
  image_user=""
  data_dir=""
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$line" == *\\ ]] && die "$file:$number: continuation lines are not supported"
    [[ "$line" == *'${'* ]] && die "$file:$number: an argument was not filled in: $line"
    instruction=${line%% *}
    rest=${line#* }
    case "$instruction" in
      FROM)
        [ "$rest" = scratch ] || die "$file:$number: the image is built FROM scratch only"
        saw_from=yes
        ;;
      ARG)
        case "$rest" in
          VERSION | REVISION | SOURCE) ;;
          *) die "$file:$number: unknown build argument $rest (VERSION, REVISION, SOURCE)" ;;
        esac
        ;;
      COPY)
        [ "$rest" = "rootfs/ /" ] || die "$file:$number: the only COPY is 'COPY rootfs/ /'"
        saw_copy=yes
        ;;
      LABEL | ENV)
        [[ "$rest" =~ ^([A-Za-z0-9._-]+)=(\"(.*)\"|([^\"[:space:]]*))$ ]] ||
          die "$file:$number: one KEY=VALUE or KEY=\"VALUE\" per $instruction line"
        local key=${BASH_REMATCH[1]} value=${BASH_REMATCH[3]}${BASH_REMATCH[4]}
        if [ "$instruction" = LABEL ]; then
          config_args+=(--config.label "$key=$value")
        else
          config_args+=(--config.env "$key=$value")
          [ "$key" = KMS_PAM_DATA_DIR ] && data_dir=$value
        fi
        ;;
      EXPOSE)
        local port
        for port in $rest; do
          [[ "$port" =~ ^[0-9]+/(tcp|udp)$ ]] || die "$file:$number: EXPOSE PORT/tcp, not $port"
          config_args+=(--config.exposedports "$port")
        done
        ;;
      USER)
        [[ "$rest" =~ ^[0-9]+:[0-9]+$ ]] || die "$file:$number: USER UID:GID, numeric"
        image_user=$rest
        config_args+=(--config.user "$rest")
        ;;
      STOPSIGNAL)
        config_args+=(--config.stopsignal "$rest")
        ;;
      ENTRYPOINT)
        local word
        jq -e 'type == "array" and length > 0 and all(type == "string")' <<<"$rest" >/dev/null 2>&1 ||
          die "$file:$number: ENTRYPOINT in JSON form"
        while IFS= read -r word; do
          config_args+=(--config.entrypoint "$word")
        done < <(jq -r '.[]' <<<"$rest")
        ;;
      HEALTHCHECK)
        local interval=30s timeout=30s start=0s retries=3 command=""
        while [[ "$rest" == --* ]]; do
          local option=${rest%% *}
          rest=${rest#* }
          case "$option" in
            --interval=*) interval=${option#*=} ;;
            --timeout=*) timeout=${option#*=} ;;
            --start-period=*) start=${option#*=} ;;
            --retries=*) retries=${option#*=} ;;
            *) die "$file:$number: unknown HEALTHCHECK option $option" ;;
          esac
        done
        [[ "$rest" == "CMD "* ]] || die "$file:$number: HEALTHCHECK [OPTIONS] CMD [\"…\"]"
        command=${rest#CMD }
        jq -e 'type == "array" and length > 0 and all(type == "string")' <<<"$command" >/dev/null 2>&1 ||
          die "$file:$number: HEALTHCHECK's CMD in JSON form"
        [[ "$retries" =~ ^[0-9]+$ ]] || die "$file:$number: --retries=N"
        healthcheck=$(jq -cn --argjson command "$command" \
          --argjson interval "$(duration_ns "$interval")" \
          --argjson timeout "$(duration_ns "$timeout")" \
          --argjson start "$(duration_ns "$start")" \
          --argjson retries "$retries" \
          '{Test: (["CMD"] + $command), Interval: $interval, Timeout: $timeout, StartPeriod: $start, Retries: $retries}')
        ;;
      *) die "$file:$number: $instruction is not an instruction this build applies" ;;
    esac
  done <"$file"
  [ -n "$saw_from" ] && [ -n "$saw_copy" ] || die "$file: needs FROM scratch and COPY rootfs/ /"
  [ -n "$image_user" ] || die "$file: needs USER"
  [ -n "$healthcheck" ] || die "$file: needs HEALTHCHECK"
  [ -n "$data_dir" ] || die "$file: needs ENV KMS_PAM_DATA_DIR (the directory made for the data)"
}

# The minimal root file system for one binary.
stage() {
  local binary=$1 rootfs=$2 name lib
  name=$(basename "$binary")
  mkdir -p "$rootfs"
  chmod 0755 "$rootfs"
  install -D -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
  # The libraries and the loader, each at the path the binary asks for (the loader's own path
  # is its PT_INTERP, the line of ldd's output without "=>").
  local listing
  listing=$(ldd "$binary") || die "ldd $binary failed"
  if grep -q 'not found' <<<"$listing"; then
    die "$binary needs libraries this machine lacks:"$'\n'"$listing"
  fi
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing")
  install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$rootfs/etc/group"
  # /etc/hosts first (Kubernetes' host aliases), then DNS; accounts from the files above.
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
  install -d -m 1777 "$rootfs/tmp"
  install -d -m 0700 -o 65532 -g 65532 "$rootfs/home/nonroot"
  install -d -m 0755 "$(dirname "$rootfs$data_dir")"
  install -d -m 0700 -o "${image_user%%:*}" -g "${image_user##*:}" "$rootfs$data_dir"
  find "$rootfs" -exec touch -h -d "@$epoch" {} +
}

blob_path() {
  echo "$1/blobs/${2%%:*}/${2#*:}"
}

# Writes $2 (a file) as a blob of layout $1 and prints "DIGEST SIZE".
put_blob() {
  local layout=$1 file=$2 sha size
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  mv "$file" "$layout/blobs/sha256/$sha"
  echo "sha256:$sha $size"
}

# umoci config has no healthcheck: set Docker's config.Healthcheck in the config blob, then point
# the manifest and the index at the new blobs.
set_healthcheck() {
  local layout=$1 tag=$2 manifest config tmp new_config new_manifest
  manifest=$(jq -r --arg tag "$tag" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' \
    "$layout/index.json")
  [ -n "$manifest" ] || die "$layout has no tag $tag"
  config=$(jq -r .config.digest "$(blob_path "$layout" "$manifest")")
  tmp=$(mktemp "$layout/.config.XXXXXX")
  jq -c --argjson healthcheck "$healthcheck" '.config.Healthcheck = $healthcheck' \
    "$(blob_path "$layout" "$config")" >"$tmp"
  read -r new_config config_size < <(put_blob "$layout" "$tmp")
  tmp=$(mktemp "$layout/.manifest.XXXXXX")
  jq -c --arg digest "$new_config" --argjson size "$config_size" \
    '.config.digest = $digest | .config.size = $size' "$(blob_path "$layout" "$manifest")" >"$tmp"
  read -r new_manifest manifest_size < <(put_blob "$layout" "$tmp")
  tmp=$(mktemp "$layout/.index.XXXXXX")
  jq --arg old "$manifest" --arg digest "$new_manifest" --argjson size "$manifest_size" \
    '.manifests |= map(if .digest == $old then .digest = $digest | .size = $size else . end)' \
    "$layout/index.json" >"$tmp"
  mv "$tmp" "$layout/index.json"
  umoci gc --layout "$layout"
}

build_image() {
  local name=$1 containerfile=$2
  local binary="$bin_dir/$name" dir="$out/$name"
  [ -x "$binary" ] || die "$binary not found: build it first (cargo build, or cargo test --workspace)"
  echo "--- image $name $version from $binary"
  rm -rf "$dir"
  mkdir -p "$dir"
  render "$containerfile" >"$dir/Containerfile"
  parse "$dir/Containerfile"
  stage "$binary" "$dir/rootfs"
  local layout="$dir/oci" image="$dir/oci:$version"
  umoci init --layout "$layout"
  umoci new --image "$image"
  # The layer: the staged tree as it is (owners, modes), in name order, timestamps from the
  # commit, no root directory entry.
  local entries=()
  mapfile -t entries < <(cd "$dir/rootfs" && LC_ALL=C ls -A)
  tar --create --file "$dir/layer.tar" --directory "$dir/rootfs" --sort=name --format=gnu \
    --numeric-owner --mtime="@$epoch" -- "${entries[@]}"
  umoci raw add-layer --image "$image" --history.created "$created" \
    --history.created_by "kms-pam-cli/deploy/image/build.sh: COPY rootfs/ /" "$dir/layer.tar"
  rm "$dir/layer.tar"
  umoci config --image "$image" --no-history --created "$created" --os linux \
    --architecture "$arch" "${config_args[@]}"
  set_healthcheck "$layout" "$version"
  local manifest
  manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
  echo "$name:$version  $layout  manifest $manifest  ($(du -sh "$layout" | cut -f1))"
}

mkdir -p "$out"
build_image kms-pam-gateway "$root/kms-pam-gateway/deploy/image/Containerfile"
build_image kms-pam "$root/kms-pam-cli/deploy/image/Containerfile"
