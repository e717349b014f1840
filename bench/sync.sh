#!/usr/bin/env bash
# Sync benchmark of the ODS network (issue 3), in one run, on loopback only:
#   - 1 GiB package synced A -> B (two fresh ods per run, B registered with A): seconds
#     from the upload's completion on A to Public on B (B's package list polled every
#     20 ms), best of 3; against rsync of the same file to an rsync daemon on loopback
#     (`rsync -a --whole-file`, fresh destination each run; also timed up to a `sync` of
#     the received file, since ods fsyncs before Public and rsync does not), best of 3.
#     ratio = rsync / ods seconds (>= 1.0: ods is no slower). B's copy is downloaded
#     and its sha256 checked against the source file. Best and median are reported.
#   - SMALL_N (1,000) packages of SMALL_KIB (64 KiB) each, synced A -> B: all uploaded
#     to a fresh A first, then B registers with A; seconds from the registration to
#     all of them Public on B (polled through the paged package list), per run, best
#     and median; against rsync of the same directory of files to the daemon (fresh
#     destination each run; also up to a `sync -f` of the destination, since ods
#     fsyncs and rsync does not). Every package's sha256 on B is checked.
#   - 10 MiB packages along a chain A-B-C-D-E (B registered with A, C with B, ...):
#     upload completion on A to Public on E (and on B, C, D on the way), best of 3
#     packages of different content; next to the pure transfer estimate
#     4 hops x 10 MiB / the single-hop throughput measured above, to judge the goal
#     "under 1 s plus transfer time".
#   - kill -9 of the receiver half way through a 1 GiB A -> B transfer (B's link to A
#     rate-limited so it lasts several seconds), restart on the same port and data
#     dir, wait for Public: bytes A served in all against the file size (re-sent
#     overhead), sha256 of B's copy checked.
# Prints a table and writes the same as JSON to bench/results/sync-<date>.json.
# Not a test: run it by hand. The servers run with their default settings (SQLite, job
# poll 1 s, anti-entropy 60 s) except where said; everything stays on 127.0.0.1.
# Before each timed 1 GiB transfer (ods and rsync alike) WARM_MIB of page cache is
# written and dropped (see warm_page_cache). Polls use bash builtins only (no curl or
# jq per poll), so the poller does not slow the servers it times.
#
#   bench/sync.sh                     # builds ods in release first
#   ODS_BIN=/path/to/ods bench/sync.sh
#   BENCH_RUNS=3 BIG_MIB=1024 CHAIN_MIB=10 KILL_RATE_MIB=200 WARM_MIB=4096 bench/sync.sh
#   BENCH_PARTS="big small" BIG_MIB=512 bench/sync.sh   # only some parts
#                                      # (of: big small chain kill; default all four)
#
# Needs rsync, curl, jq (installed with apt-get when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "${1:-}" != wan ] || exec "$ROOT/bench/wan.sh" # `bench/sync.sh wan`: the WAN case, bench/wan.sh
RUNS=${BENCH_RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
CHAIN_MIB=${CHAIN_MIB:-10}
CHAIN_LEN=5
KILL_RATE_MIB=${KILL_RATE_MIB:-200} # B's fetch rate from A in the kill -9 run
SMALL_N=${SMALL_N:-1000}
SMALL_KIB=${SMALL_KIB:-64}
PARTS=" ${BENCH_PARTS:-big small chain kill} "
part() { [[ $PARTS == *" $1 "* ]]; }
POLL=0.02                           # seconds between two polls of a package list
WARM_MIB=${WARM_MIB:-$((4 * BIG_MIB))} # page cache warmed before each timed transfer
# The A -> B and chain runs keep the servers' default anti-entropy timer (60 s), so
# what is timed is the push path. The kill -9 run uses a short one, as the tests do: the restarted B then
# resumes at its next reconciliation instead of when the dead process's job lease
# runs out (60 s).
KILL_SYNC_INTERVAL=${KILL_SYNC_INTERVAL:-2}
ODS_LOG_LEVEL=${ODS_LOG_LEVEL:-info}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- tools
need=()
command -v rsync >/dev/null || need+=(rsync)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
install_packages "${need[@]}"

# ---------------------------------------------------------------- build
build_ods

# ---------------------------------------------------------------- workspace + cleanup
bench_workspace ods-sync-bench
log "working in $WORK: $(fs_json "$WORK")"

# Forgets a process that has been waited for (its pid may be reused).
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# An ods sync writes the file twice (A's upload, then B's copy) and B's writes
# measured ~1 CPU-s cheaper for 1 GiB after warming 4x the file than 2x, so before each
# timed transfer both ods and rsync get warm_page_cache "$WARM_MIB" (4x).

# ---------------------------------------------------------------- ods servers
# The default admin password may only be changed: each fresh server starts with this one.
BENCH_PASSWORD=bench-sync-pw-1
AUTH=admin:$BENCH_PASSWORD
declare -A SRV_PID SRV_URL SRV_DIR SRV_ENV

# start_ods NAME LISTEN DATA_DIR [VAR=value...]: starts (or restarts) server NAME and
# waits until it listens. SRV_URL[NAME] is its URL.
start_ods() {
  local name=$1 listen=$2 dir=$3 url="" pid
  shift 3
  [ $# -gt 0 ] && SRV_ENV[$name]="$*"
  mkdir -p "$dir"
  : >"$WORK/$name.out"
  # shellcheck disable=SC2086 # SRV_ENV holds VAR=value words
  env "${ODS_UNSET[@]}" ODS_LOG="$ODS_LOG_LEVEL" ODS_INITIAL_ADMIN_PASSWORD="$BENCH_PASSWORD" ${SRV_ENV[$name]:-} \
    "$ODS_BIN" serve --listen "$listen" --data-dir "$dir" >"$WORK/$name.out" 2>>"$WORK/$name.err" &
  pid=$!
  PIDS+=("$pid")
  SRV_PID[$name]=$pid
  SRV_DIR[$name]=$dir
  for _ in $(seq 600); do
    url=$(sed -n 's/^ODS listening on \(http:[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$WORK/$name.err" >&2; die "ods $name exited at start"; }
    sleep 0.05
  done
  [ -n "$url" ] || die "ods $name did not print its URL"
  SRV_URL[$name]=$url
}
stop_ods() { # NAME [signal]
  local pid=${SRV_PID[$1]}
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}
# new_ods NAME [VAR=value...]: a fresh server (new data dir, loopback port picked by
# the OS), named NAME, stage Prod, its URL published.
new_ods() {
  local name=$1
  shift
  SRV_ENV[$name]=""
  rm -rf "$WORK/data-$name"
  start_ods "$name" 127.0.0.1:0 "$WORK/data-$name" "$@"
  api "$name" POST /api/admin/about 201 \
    "$(jq -nc --arg n "$name" --arg u "${SRV_URL[$name]}" '{name: $n, url: $u, stage: "Prod"}')" >/dev/null
}
drop_ods() { stop_ods "$1"; rm -rf "${SRV_DIR[$1]}"; }
# ---- polling with bash builtins only
# On 2 cores, polling every 20 ms with curl + jq took ~20% of the machine during a
# transfer (perf), slowing the very servers being timed; these pollers fork nothing:
# HTTP over /dev/tcp, $EPOCHREALTIME, and a `read -t` for a sleep.
AUTH_B64=$(printf '%s' "$AUTH" | base64 -w0)
exec {SLEEP_FD}<> <(:)
# (the pollers themselves, http_get, pkg_status and wait_public, are in lib.sh)

# ---------------------------------------------------------------- files
FILES=$WORK/files
mkdir -p "$FILES"
BIG=$FILES/big.bin
part big || part kill || BIG_MIB=1
log "creating a ${BIG_MIB} MiB file from /dev/urandom in $WORK"
dd if=/dev/urandom of="$BIG" bs=1M count="$BIG_MIB" iflag=fullblock status=none
BIG_SIZE=$(stat -c %s "$BIG")
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
if [ "$BIG_MIB" = 1024 ]; then BIG_LABEL="1 GiB"; else BIG_LABEL="$BIG_MIB MiB"; fi


# ---------------------------------------------------------------- rsync daemon
RS=$WORK/rsync
start_rsyncd() {
  mkdir -p "$RS/dest"
  local try
  for try in 1 2 3; do # a port found free may be taken before rsync binds it
    RSYNC_PORT=$(free_port)
    cat >"$RS/rsyncd.conf" <<EOF
pid file = $RS/rsyncd.pid
lock file = $RS/rsyncd.lock
log file = $RS/rsyncd.log
address = 127.0.0.1
use chroot = no
uid = $(id -u)
gid = $(id -g)
[mod]
  path = $RS/dest
  read only = false
EOF
    rm -f "$RS/rsyncd.pid"
    rsync --daemon --no-detach --port "$RSYNC_PORT" --config "$RS/rsyncd.conf" 2>"$RS/stderr" &
    RSYNC_PID=$!
    PIDS+=("$RSYNC_PID")
    for _ in $(seq 200); do
      ss -Hltn "sport = :$RSYNC_PORT" | grep -q . && return
      kill -0 "$RSYNC_PID" 2>/dev/null || break
      sleep 0.02
    done
    stop_rsyncd
  done
  cat "$RS/stderr" "$RS/rsyncd.log" >&2
  die "rsync daemon did not listen"
}
stop_rsyncd() { kill "$RSYNC_PID" 2>/dev/null; wait "$RSYNC_PID" 2>/dev/null || true; forget "$RSYNC_PID"; }

# ---------------------------------------------------------------- 1. A -> B vs rsync
if part big; then
log "A -> B: $RUNS x $BIG_LABEL, fresh servers each run"
ods_times=(); transfer_times=(); upload_times=()
for i in $(seq "$RUNS"); do
  new_ods A; new_ods B
  register B A
  warm_page_cache "$WARM_MIB"
  u0=$EPOCHREALTIME
  sha=$(upload A "$BIG" big.bin)
  t0=$EPOCHREALTIME
  wait_public B big.bin 600
  t1=$PUBLIC_AT
  [ "$sha" = "$BIG_SHA" ] || die "A computed sha256 $sha, the file has $BIG_SHA"
  ods_times+=("$(elapsed "$t0" "$t1")")
  upload_times+=("$(elapsed "$u0" "$t0")")
  transfer_times+=("$(synced_in B big.bin)")
  got=$(served_sha B big.bin)
  [ "$got" = "$BIG_SHA" ] || die "B serves big.bin with sha256 $got, the source has $BIG_SHA"
  sync_stat A chunk_bytes_served; served=$SYNC_STAT
  log "  run $i: upload on A ${upload_times[-1]} s; Public on B ${ods_times[-1]} s after (B's transfer ${transfer_times[-1]} s), A served $served bytes, sha256 ok"
  drop_ods A; drop_ods B
done

log "rsync daemon: $RUNS x $BIG_LABEL, fresh destination each run"
start_rsyncd
rsync_times=(); rsync_sync_times=()
for i in $(seq "$RUNS"); do
  rm -rf "$RS/dest" && mkdir "$RS/dest"
  warm_page_cache "$WARM_MIB"
  t0=$EPOCHREALTIME
  rsync -a --whole-file "$BIG" "rsync://127.0.0.1:$RSYNC_PORT/mod/"
  t1=$EPOCHREALTIME
  sync "$RS/dest/big.bin" # ods fsyncs before Public; rsync does not: timed apart
  t2=$EPOCHREALTIME
  [ "$(stat -c %s "$RS/dest/big.bin")" = "$BIG_SIZE" ] || die "rsync wrote a short file"
  rsync_times+=("$(elapsed "$t0" "$t1")"); rsync_sync_times+=("$(elapsed "$t0" "$t2")")
  log "  run $i: rsync ${rsync_times[-1]} s (+sync ${rsync_sync_times[-1]} s)"
done
[ "$(sha256sum "$RS/dest/big.bin" | cut -d' ' -f1)" = "$BIG_SHA" ] || die "rsync copy differs"
rm -rf "$RS/dest"
stop_rsyncd

ods_best=$(best "${ods_times[@]}")
rsync_best=$(best "${rsync_times[@]}")
rsync_sync_best=$(best "${rsync_sync_times[@]}")
ods_median=$(median "${ods_times[@]}")
rsync_median=$(median "${rsync_times[@]}")
rsync_sync_median=$(median "${rsync_sync_times[@]}")
HOP_BPS=$(awk -v b="$BIG_SIZE" -v s="$ods_best" 'BEGIN { printf "%.0f", b / s }')
fi


# ---------------------------------------------------------------- 2. many small packages
if part small; then
SMALL=$FILES/small
mkdir -p "$SMALL"
log "creating $SMALL_N files of $SMALL_KIB KiB"
for k in $(seq -w 1 "$SMALL_N"); do
  head -c $((SMALL_KIB * 1024)) /dev/urandom >"$SMALL/s$k.bin"
done
(cd "$SMALL" && sha256sum -- *.bin | sort -k2) >"$WORK/small.sha"
SMALL_BYTES=$((SMALL_N * SMALL_KIB * 1024))
# all_public NAME: SMALL_N packages on NAME, all Public (the lowest and the highest
# status by the list's sort are both Public).
all_public() {
  local q='/api/admin/packages?limit=1&sort=status&order'
  http_get "$1" "$q=asc" 2>/dev/null || return 1
  [[ $HTTP_REPLY =~ \"total\":${SMALL_N}[,}] ]] || return 1
  [[ $HTTP_REPLY =~ \"status\":\"Public\" ]] || return 1
  http_get "$1" "$q=desc" 2>/dev/null || return 1
  [[ $HTTP_REPLY =~ \"status\":\"Public\" ]]
}
log "$SMALL_N x $SMALL_KIB KiB A -> B: $RUNS runs, fresh servers each run"
small_times=()
for i in $(seq "$RUNS"); do
  new_ods A; new_ods B
  (cd "$SMALL" && ls) | xargs -P 4 -I{} curl -sSf -u "$AUTH" -F "file=@$SMALL/{};filename={}" \
    -F stage=Prod -o /dev/null "${SRV_URL[A]}/api/admin/upload" || die "uploading the small files to A failed"
  warm_page_cache 256
  t0=$EPOCHREALTIME
  register B A
  deadline=$((${EPOCHREALTIME%.*} + 600))
  until all_public B; do
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || { tail -n 20 "$WORK/B.err" >&2; die "the small packages were not all Public on B in 600 s"; }
    nap 0.05
  done
  t1=$EPOCHREALTIME
  small_times+=("$(elapsed "$t0" "$t1")")
  api B GET /api/admin/packages 200 | jq -r '.items[] | "\(.sha256)  \(.filename)"' | sort -k2 >"$WORK/small-b.sha"
  cmp -s "$WORK/small.sha" "$WORK/small-b.sha" || die "B's small packages differ from the source files"
  log "  run $i: $SMALL_N packages Public on B ${small_times[-1]} s after the registration, every sha256 ok"
  drop_ods A; drop_ods B
done
start_rsyncd
small_rsync=(); small_rsync_sync=()
for i in $(seq "$RUNS"); do
  rm -rf "$RS/dest" && mkdir "$RS/dest"
  warm_page_cache 256
  t0=$EPOCHREALTIME
  rsync -a --whole-file "$SMALL/" "rsync://127.0.0.1:$RSYNC_PORT/mod/"
  t1=$EPOCHREALTIME
  sync -f "$RS/dest"
  t2=$EPOCHREALTIME
  small_rsync+=("$(elapsed "$t0" "$t1")"); small_rsync_sync+=("$(elapsed "$t0" "$t2")")
  log "  run $i: rsync ${small_rsync[-1]} s (+sync ${small_rsync_sync[-1]} s)"
done
[ "$(find "$RS/dest" -name '*.bin' | wc -l)" = "$SMALL_N" ] || die "rsync copied a different number of files"
rm -rf "$RS/dest"
stop_rsyncd
small_best=$(best "${small_times[@]}"); small_median=$(median "${small_times[@]}")
small_rsync_best=$(best "${small_rsync[@]}"); small_rsync_median=$(median "${small_rsync[@]}")
small_rsync_sync_best=$(best "${small_rsync_sync[@]}"); small_rsync_sync_median=$(median "${small_rsync_sync[@]}")
fi

# ---------------------------------------------------------------- 2. chain of 5
if part chain; then
[ -n "${HOP_BPS:-}" ] || die "the chain part needs the big part (its single-hop throughput)"
NODES=(A B C D E)
log "chain A-B-C-D-E: $RUNS x ${CHAIN_MIB} MiB packages uploaded on A"
for n in "${NODES[@]}"; do new_ods "$n"; done
for k in $(seq 1 $((CHAIN_LEN - 1))); do register "${NODES[$k]}" "${NODES[$((k - 1))]}"; done
chain_times=(); hop_lines=(); chain_transfer=()
for i in $(seq "$RUNS"); do
  f=$FILES/chain-$i.bin
  dd if=/dev/urandom of="$f" bs=1M count="$CHAIN_MIB" iflag=fullblock status=none
  sha=$(sha256sum "$f" | cut -d' ' -f1)
  declare -A seen=()
  got=$(upload A "$f" "chain-$i.bin")
  t0=$EPOCHREALTIME
  deadline=$((${EPOCHREALTIME%.*} + 300))
  while :; do # B, C, D and E polled in turn, each time one not yet Public
    for n in B C D E; do
      [ -n "${seen[$n]:-}" ] && continue
      pkg_status "$n" "chain-$i.bin"
      if [ "$PKG_STATUS" = Public ]; then seen[$n]=$EPOCHREALTIME; fi
    done
    [ -n "${seen[E]:-}" ] && break
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || die "chain-$i.bin not Public on E in 300 s"
    nap "$POLL"
  done
  for n in B C D E; do
    if [ -n "${seen[$n]:-}" ]; then seen[$n]=$(elapsed "$t0" "${seen[$n]}"); fi
  done
  [ "$got" = "$sha" ] || die "A computed sha256 $got for chain-$i.bin, the file has $sha"
  chain_times+=("${seen[E]}")
  hop_lines+=("{\"B\": ${seen[B]:-null}, \"C\": ${seen[C]:-null}, \"D\": ${seen[D]:-null}, \"E\": ${seen[E]}}")
  tr=(); for n in B C D E; do tr+=("$(synced_in "$n" "chain-$i.bin")"); done
  chain_transfer+=("[$(IFS=,; echo "${tr[*]}")]")
  for n in B C D E; do
    [ "$(api "$n" GET /api/admin/packages 200 | jq -r --arg f "chain-$i.bin" '.items[] | select(.filename == $f) | .sha256')" = "$sha" ] ||
      die "chain-$i.bin on $n has another sha256"
  done
  [ "$(served_sha E "chain-$i.bin")" = "$sha" ] || die "E serves chain-$i.bin with another sha256"
  log "  package $i: Public on B ${seen[B]:-?} s, C ${seen[C]:-?} s, D ${seen[D]:-?} s, E ${seen[E]} s after upload (transfers B..E: ${tr[*]} s)"
done
for n in "${NODES[@]}"; do drop_ods "$n"; done
chain_best=$(best "${chain_times[@]}")
CHAIN_SIZE=$((CHAIN_MIB * 1024 * 1024))
chain_estimate=$(awk -v n=$((CHAIN_LEN - 1)) -v b="$CHAIN_SIZE" -v r="$HOP_BPS" 'BEGIN { printf "%.4f", n * b / r }')
chain_over=$(awk -v a="$chain_best" -v b="$chain_estimate" 'BEGIN { printf "%.4f", a - b }')

fi
# ---------------------------------------------------------------- 3. kill -9 half way
if part kill; then
KILL_RATE=$((KILL_RATE_MIB * 1024 * 1024))
log "kill -9 of B half way through a $BIG_LABEL transfer from A (B fetching at $KILL_RATE_MIB MiB/s)"
new_ods A "ODS_SYNC_INTERVAL=$KILL_SYNC_INTERVAL"
new_ods B "ODS_SYNC_INTERVAL=$KILL_SYNC_INTERVAL"
register B A
peer_id=$(api B GET /api/admin/registered_ods 200 | jq -r '.items[0].id')
api B PATCH "/api/admin/registered_ods/$peer_id" 200 "{\"rate_limit\": $KILL_RATE}" >/dev/null
sha=$(upload A "$BIG" big.bin)
t0=$EPOCHREALTIME
[ "$sha" = "$BIG_SHA" ] || die "A computed sha256 $sha, the file has $BIG_SHA"
half=$((BIG_SIZE / 2))
deadline=$((${EPOCHREALTIME%.*} + 600))
while :; do
  sync_stat A chunk_bytes_served
  if [ "$SYNC_STAT" -ge "$half" ]; then
    http_get B /api/admin/packages # B's own view, for the log
    progress=unknown
    if [[ $HTTP_REPLY =~ \"progress\":([0-9.]+) ]]; then progress=${BASH_REMATCH[1]}; fi
    break
  fi
  [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || die "A did not serve half of big.bin in 600 s"
  nap "$POLL"
done
stop_ods B KILL
t_kill=$EPOCHREALTIME
sync_stat A chunk_bytes_served; served_before=$SYNC_STAT
B_LISTEN=${SRV_URL[B]#http://}
log "  killed B at $(elapsed "$t0" "$t_kill") s: A had served $served_before bytes (B said progress $progress); restarting B on $B_LISTEN"
start_ods B "$B_LISTEN" "${SRV_DIR[B]}"
t_restart=$EPOCHREALTIME
wait_public B big.bin 600
t_done=$PUBLIC_AT
sync_stat A chunk_bytes_served; served_total=$SYNC_STAT
sync_stat B chunk_bytes_fetched; fetched_after=$SYNC_STAT
got=$(served_sha B big.bin)
[ "$got" = "$BIG_SHA" ] || die "B serves big.bin with sha256 $got after the restart, the source has $BIG_SHA"
resent=$((served_total - BIG_SIZE))
served_after=$((served_total - served_before))
resume_secs=$(elapsed "$t_restart" "$t_done")
resent_pct=$(awk -v r="$resent" -v s="$BIG_SIZE" 'BEGIN { printf "%.2f", 100 * r / s }')
log "  Public on B $resume_secs s after the restart; A served $served_total bytes in all ($served_after after the kill; B fetched $fetched_after since its restart): re-sent $resent bytes ($resent_pct %), sha256 ok"
drop_ods A; drop_ods B

resent_mib=$(awk -v r="$resent" 'BEGIN { printf "%.1f", r / 1048576 }')
fi

# ---------------------------------------------------------------- report
git_state
printf '\nODS sync benchmark (commit %s%s, %s cores, %s runs: best / median)\n' \
  "$commit" "$([ "$dirty" = true ] && echo ', uncommitted changes')" "$(nproc)" "$RUNS"
fmt='%-52s %16s %16s %12s\n'
printf "$fmt" metric ods reference "ratio b / m"
sections=()
if part big; then
  ods_mbps=$(mbps "$BIG_SIZE" "$ods_best")
  rsync_mbps=$(mbps "$BIG_SIZE" "$rsync_best")
  printf "$fmt" "$BIG_LABEL A->B seconds (ref: rsync daemon)" "$ods_best / $ods_median" "$rsync_best / $rsync_median" "$(ratio "$rsync_best" "$ods_best") / $(ratio "$rsync_median" "$ods_median")"
  printf "$fmt" "$BIG_LABEL A->B seconds (ref: rsync + sync)" "$ods_best / $ods_median" "$rsync_sync_best / $rsync_sync_median" "$(ratio "$rsync_sync_best" "$ods_best") / $(ratio "$rsync_sync_median" "$ods_median")"
  printf "$fmt" "$BIG_LABEL A->B MB/s, best (ref: rsync daemon)" "$ods_mbps" "$rsync_mbps" ""
  sections+=("$(cat <<EOF
  "a_to_b": {
    "file_bytes": $BIG_SIZE,
    "ods_seconds": $(jarr "${ods_times[@]}"),
    "ods_transfer_seconds_reported_by_b": $(jarr "${transfer_times[@]}"),
    "upload_to_a_seconds": $(jarr "${upload_times[@]}"),
    "rsync_seconds": $(jarr "${rsync_times[@]}"),
    "rsync_plus_sync_seconds": $(jarr "${rsync_sync_times[@]}"),
    "ods_best_seconds": $ods_best,
    "ods_median_seconds": $ods_median,
    "rsync_best_seconds": $rsync_best,
    "rsync_median_seconds": $rsync_median,
    "rsync_plus_sync_best_seconds": $rsync_sync_best,
    "rsync_plus_sync_median_seconds": $rsync_sync_median,
    "ods_mb_per_s": $ods_mbps,
    "rsync_mb_per_s": $rsync_mbps,
    "ratio_rsync_over_ods": $(ratio "$rsync_best" "$ods_best"),
    "ratio_rsync_over_ods_median": $(ratio "$rsync_median" "$ods_median"),
    "ratio_rsync_plus_sync_over_ods": $(ratio "$rsync_sync_best" "$ods_best"),
    "ratio_rsync_plus_sync_over_ods_median": $(ratio "$rsync_sync_median" "$ods_median"),
    "sha256_verified": true
  }
EOF
)")
fi
if part small; then
  printf "$fmt" "$SMALL_N x $SMALL_KIB KiB A->B seconds (ref: rsync)" "$small_best / $small_median" "$small_rsync_best / $small_rsync_median" "$(ratio "$small_rsync_best" "$small_best") / $(ratio "$small_rsync_median" "$small_median")"
  printf "$fmt" "$SMALL_N x $SMALL_KIB KiB A->B seconds (ref: rsync + sync)" "$small_best / $small_median" "$small_rsync_sync_best / $small_rsync_sync_median" "$(ratio "$small_rsync_sync_best" "$small_best") / $(ratio "$small_rsync_sync_median" "$small_median")"
  sections+=("$(cat <<EOF
  "small_packages": {
    "packages": $SMALL_N,
    "package_bytes": $((SMALL_KIB * 1024)),
    "total_bytes": $SMALL_BYTES,
    "ods_register_to_all_public_seconds": $(jarr "${small_times[@]}"),
    "rsync_seconds": $(jarr "${small_rsync[@]}"),
    "rsync_plus_sync_seconds": $(jarr "${small_rsync_sync[@]}"),
    "ods_best_seconds": $small_best,
    "ods_median_seconds": $small_median,
    "rsync_best_seconds": $small_rsync_best,
    "rsync_median_seconds": $small_rsync_median,
    "rsync_plus_sync_best_seconds": $small_rsync_sync_best,
    "rsync_plus_sync_median_seconds": $small_rsync_sync_median,
    "ratio_rsync_over_ods": $(ratio "$small_rsync_best" "$small_best"),
    "ratio_rsync_over_ods_median": $(ratio "$small_rsync_median" "$small_median"),
    "ratio_rsync_plus_sync_over_ods": $(ratio "$small_rsync_sync_best" "$small_best"),
    "sha256_verified": true
  }
EOF
)")
fi
if part chain; then
  printf "$fmt" "${CHAIN_MIB} MiB upload on A -> Public on E, seconds" "$chain_best" "" ""
  printf "$fmt" "  pure transfer estimate, 4 hops (s)" "$chain_estimate" "" ""
  printf "$fmt" "  beyond the transfer estimate (goal < 1 s)" "$chain_over" "" ""
  sections+=("$(cat <<EOF
  "chain": {
    "servers": $CHAIN_LEN,
    "file_bytes": $CHAIN_SIZE,
    "upload_to_public_on_e_seconds": $(jarr "${chain_times[@]}"),
    "public_after_upload_seconds": $(jarr "${hop_lines[@]}"),
    "transfer_seconds_reported_b_to_e": $(jarr "${chain_transfer[@]}"),
    "best_seconds": $chain_best,
    "transfer_estimate_seconds": $chain_estimate,
    "single_hop_bytes_per_s": $HOP_BPS,
    "beyond_transfer_estimate_seconds": $chain_over,
    "sha256_verified": true
  }
EOF
)")
fi
if part kill; then
  printf "$fmt" "kill -9 half way: bytes served / file size" "$served_total" "$BIG_SIZE" "$(ratio "$served_total" "$BIG_SIZE")"
  printf "$fmt" "  re-sent after the kill (MiB)" "$resent_mib" "" ""
  printf "$fmt" "  restart -> Public on B (s)" "$resume_secs" "" ""
  sections+=("$(cat <<EOF
  "kill9_half_way": {
    "file_bytes": $BIG_SIZE,
    "rate_limit_bytes_per_s": $KILL_RATE,
    "served_at_kill": $served_before,
    "served_after_restart": $served_after,
    "served_total": $served_total,
    "resent_bytes": $resent,
    "resent_percent": $resent_pct,
    "restart_to_public_seconds": $resume_secs,
    "sync_interval_seconds": $KILL_SYNC_INTERVAL,
    "sha256_verified": true
  }
EOF
)")
fi
printf '(ratio for times = rsync / ods: >= 1.0 means ods is no slower)\n'

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/sync-$(date -u +%Y%m%dT%H%M%SZ).json
{
  cat <<EOF
{
  "benchmark": "sync",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "machine": {"cores": $(nproc), "kernel": "$(uname -r)", "mem_total_kib": $(awk '/MemTotal/ { print $2 }' /proc/meminfo), "load_average_1m": $(cut -d' ' -f1 /proc/loadavg), "rsync": "$(rsync --version | awk 'NR == 1 { print $3 }')"},
  "ods_bin": "$ODS_BIN",
  "parts": "$(echo $PARTS)",
  "runs": $RUNS,
  "poll_seconds": $POLL,
  "warm_page_cache_mib": $WARM_MIB,
  "work_filesystem": $(fs_json "$WORK"),
EOF
  (IFS=,; printf '%s\n' "${sections[*]}")
  echo "}"
} >"$OUT"
jq . "$OUT" >/dev/null 2>&1 || die "wrote invalid JSON to $OUT"
printf '\nwrote %s\n' "${OUT#"$ROOT"/}"
