# Helpers shared by bench/core.sh, bench/sync.sh and bench/wan.sh; sourced, not run.
# The sourcing script sets ROOT (the repository) first, and CARGO_TARGET_DIR if it wants
# its own.
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
  # A script with more to undo (network namespaces) defines cleanup_more.
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  rm -rf "$WORK"
}

# fs_json DIR: the filesystem DIR is on, as JSON: its source, its type and, for ext4,
# whether it has a journal. Without one, ext4 creates files slowly for a while after
# many were deleted (it scans past recently freed inodes), which the small-files case
# pays for ods and rsync alike; `TMPDIR` picks where a benchmark works.
fs_json() {
  local src type dev journal=null
  read -r src type < <(findmnt -no SOURCE,FSTYPE -T "$1")
  dev=${src##*/}
  if [ "$type" = ext4 ]; then
    journal=false
    for j in /proc/fs/jbd2/"$dev"-*; do [ -e "$j" ] && journal=true; done
  fi
  printf '{"source": "%s", "type": "%s", "journal": %s}' "$src" "$type" "$journal"
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

# static_nginx_conf DIR PORT FILES [TOP...]: writes DIR/nginx.conf for an nginx serving
# FILES at /share/ on 127.0.0.1:PORT with sendfile (the reference for downloads),
# keeping every path it writes in DIR; TOP lines go before the rest (for example
# "master_process off;"). Workers: auto unless a TOP line sets them.
static_nginx_conf() {
  local dir=$1 port=$2 files=$3 top
  shift 3
  top=$(printf '%s\n' "$@")
  grep -q worker_processes <<<"$top" || top+=$'\nworker_processes auto;'
  cat >"$dir/nginx.conf" <<EOF
$top
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location /share/ { alias $files/; }
  }
}
EOF
}

# git_state: sets commit (short hash) and dirty (true when crates/ has changes).
# shellcheck disable=SC2034 # used by the sourcing scripts
git_state() {
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -q . && echo true || echo false)
}

# median of the arguments (the mean of the two middle ones for an even count)
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- talking to ods
# The sourcing script fills SRV_URL[NAME] (http://host:port) and sets AUTH (user:password).
# Polls use bash builtins only (no curl or jq per poll): on 2 cores, polling every 20 ms
# with curl + jq took ~20% of the machine during a transfer (perf), slowing the servers
# being timed. These fork nothing: HTTP over /dev/tcp, $EPOCHREALTIME, `read -t`.
declare -A SRV_URL
POLL=${POLL:-0.02} # seconds between two polls of a package list
nap() {
  [ -n "${SLEEP_FD:-}" ] || exec {SLEEP_FD}<> <(:)
  read -r -t "$1" -u "$SLEEP_FD" _ || true
}
# api NAME METHOD PATH STATUS [JSON]: an admin call; prints the answer's body.
api() {
  local name=$1 method=$2 path=$3 want=$4 body=${5:-} out code
  out=$WORK/api.$BASHPID
  if [ -n "$body" ]; then
    code=$(curl -sS --noproxy '*' -u "$AUTH" -X "$method" -H 'Content-Type: application/json' \
      --data-binary "$body" -o "$out" -w '%{http_code}' "${SRV_URL[$name]}$path")
  else
    code=$(curl -sS --noproxy '*' -u "$AUTH" -X "$method" -o "$out" -w '%{http_code}' "${SRV_URL[$name]}$path")
  fi
  [ "$code" = "$want" ] || { cat "$out" >&2; echo >&2; die "$method $path on $name answered $code, not $want"; }
  cat "$out"
  rm -f "$out"
}
# register FROM TO: FROM registers with TO (TO's ISS ID and key, as on the Network tab).
register() {
  local a body
  a=$(api "$2" GET /api/admin/about 200)
  body=$(jq -c --arg u "${SRV_URL[$2]}" '{url: $u, iss_id: .iss, key: .key}' <<<"$a")
  api "$1" POST /api/admin/register 201 "$body" >/dev/null
}
# upload NAME FILE FILENAME [STAGE]: prints the sha256 ods computed.
upload() {
  local out=$WORK/upload.json code
  code=$(curl -sS --noproxy '*' -u "$AUTH" -F "file=@$2;filename=$3" -F "stage=${4:-Prod}" -o "$out" \
    -w '%{http_code}' "${SRV_URL[$1]}/api/admin/upload")
  [ "$code" = 201 ] || { cat "$out" >&2; die "upload of $3 to $1 answered $code"; }
  jq -r .sha256 "$out"
}
# http_get NAME PATH: the whole answer (headers and body) in HTTP_REPLY.
http_get() {
  local hp=${SRV_URL[$1]#http://} fd
  HTTP_REPLY=""
  exec {fd}<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n' \
    "$2" "$hp" "${AUTH_B64:-$(printf '%s' "$AUTH" | base64 -w0)}" >&"$fd"
  IFS= read -r -d '' -u "$fd" HTTP_REPLY || true
  exec {fd}<&-
}
# pkg_status NAME FILENAME: the package's status on NAME in PKG_STATUS ("none" when it
# has none). List items are flat JSON objects.
pkg_status() {
  local item
  PKG_STATUS=none
  http_get "$1" /api/admin/packages 2>/dev/null || return 0
  [[ $HTTP_REPLY =~ \{[^{}]*\"filename\":\"$2\"[^{}]*\} ]] || return 0
  item=${BASH_REMATCH[0]}
  if [[ $item =~ \"status\":\"([A-Za-z]+)\" ]]; then PKG_STATUS=${BASH_REMATCH[1]}; fi
}
# wait_public NAME FILENAME TIMEOUT_S: polls every $POLL s; PUBLIC_AT is the
# $EPOCHREALTIME of the first poll that saw it Public.
# shellcheck disable=SC2034 # PUBLIC_AT is for the caller
wait_public() {
  local deadline=$((${EPOCHREALTIME%.*} + $3))
  while :; do
    pkg_status "$1" "$2"
    [ "$PKG_STATUS" = Public ] && { PUBLIC_AT=$EPOCHREALTIME; return; }
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || { tail -n 20 "$WORK/$1.err" >&2 2>/dev/null; die "$2 not Public on $1 in $3 s (status $PKG_STATUS)"; }
    nap "$POLL"
  done
}
# sync_stat NAME COUNTER: one counter of GET /api/admin/sync, in SYNC_STAT.
# shellcheck disable=SC2034 # SYNC_STAT is for the caller
sync_stat() {
  http_get "$1" /api/admin/sync
  [[ $HTTP_REPLY =~ \"$2\":([0-9]+) ]] || die "no $2 in $1's /api/admin/sync"
  SYNC_STAT=${BASH_REMATCH[1]}
}
# served_sha NAME FILENAME: sha256 of NAME's copy, downloaded from its share URL.
served_sha() { curl -sSf --noproxy '*' "${SRV_URL[$1]}/share/$2" | sha256sum | cut -d' ' -f1; }
# synced_in NAME FILENAME: the "synced in X s" of NAME's package.public event for
# FILENAME (the transfer alone).
synced_in() {
  api "$1" GET "/api/admin/events?kind=package.public" 200 |
    jq -r --arg f "$2" '[.items[] | select(.filename == $f) | .message | capture("synced in (?<s>[0-9.]+) s").s] | first // "null"'
}
