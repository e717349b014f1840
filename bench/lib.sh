# Helpers shared by bench/core.sh and bench/sync.sh; sourced, not run. The sourcing
# script sets ROOT (the repository) first, and CARGO_TARGET_DIR if it wants its own.
# shellcheck shell=bash

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# install_packages PKG...: installs the Debian packages given (none: nothing to do).
install_packages() {
  [ $# -gt 0 ] || return 0
  log "installing $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; } ||
    die "could not install $*"
}

# build_ods: sets ODS_BIN, building ods in release unless ODS_BIN is already set.
build_ods() {
  if [ -z "${ODS_BIN:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ods-target}
    log "building ods (release, target dir $CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --quiet -p ods) || die "release build failed"
    ODS_BIN=$CARGO_TARGET_DIR/release/ods
  fi
  [ -x "$ODS_BIN" ] || die "no ods binary at $ODS_BIN"
}

# The configuration variables an ods under benchmark must not inherit: pass
# "${ODS_UNSET[@]}" to env.
# shellcheck disable=SC2034 # used by the sourcing scripts
ODS_UNSET=(-u DATABASE_URL -u ODS_CONF -u UPLOAD_STAGING_DIRECTORY -u MYSQL_SERVER
  -u ODS_LISTEN -u ODS_DATA_DIR -u DEBUG -u ODS_SYNC_INTERVAL -u ODS_JOB_POLL_MS
  -u ODS_MAX_TRANSFERS -u SECRET_KEY -u DATABASE_KEY -u ODS_LOGIN_WINDOW_SECS
  -u ODS_LOGIN_MAX_FAILURES -u ODS_LOGIN_MAX_FAILURES_PER_ADDRESS)

# bench_workspace NAME: a fresh WORK directory, removed at exit with every process
# whose pid is in PIDS.
bench_workspace() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free loopback port"
}

now() { date +%s.%N; }
# Seconds between two `now` (or $EPOCHREALTIME) stamps.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
# min of the arguments
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
# median of the arguments (the lower middle one for an even count)
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "null" }'; }
# A JSON array of the arguments (numbers, or strings already quoted).
jarr() { local IFS=,; echo "[$*]"; }

# warm_page_cache MIB: on a VM, page-cache pages the guest has never used (or has
# handed back) cost a hypervisor fault on first write: a new 1 GiB file is written at
# ~0.4 GB/s instead of 2-4 GB/s. Writing and deleting MIB of scratch first gives the
# next timed transfer already-touched pages, so no side is timed on the hypervisor.
warm_page_cache() {
  dd if=/dev/zero of="$WORK/scratch" bs=1M count="$1" status=none
  rm -f "$WORK/scratch"
}

# git_state: sets commit (short hash) and dirty (true when crates/ has changes).
# shellcheck disable=SC2034 # used by the sourcing scripts
git_state() {
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -q . && echo true || echo false)
}
