#!/usr/bin/env bash
# Instructions per 64 KiB download, ods against nginx, counted by valgrind's callgrind
# (every thread, user space only). Counts do not depend on what else the machine runs,
# so two builds can be compared to a percent where `wrk` req/s swing by 15%. The kernel's
# share (TCP, sendfile), which nginx and ods pay alike, is not counted: read it as the
# server's own work per request, not as throughput.
#
# Each server runs under callgrind; after a warm-up, its counters are zeroed, `wrk -t1
# -c4` downloads the file for IR_DURATION, and the counters are dumped and divided by
# the requests wrk made. nginx runs as one process (master_process off, sendfile on) so
# one callgrind sees all of its work. Prints a table and writes
# bench/results/instructions-<date>.json. Not a test: run it by hand.
#
#   bench/instructions.sh                     # builds ods in release first
#   ODS_BIN=/path/to/ods IR_RUNS=3 IR_DURATION=15s bench/instructions.sh
#
# Needs valgrind, nginx-light, wrk, curl, jq (installed with apt-get when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${IR_RUNS:-3}
DURATION=${IR_DURATION:-15s}
SMALL_KIB=${SMALL_KIB:-64}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
install_packages "${need[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

build_ods
git_state
bench_workspace ods-instructions
chmod 755 "$WORK" # nginx may drop to www-data to read the file
FILES=$WORK/files
mkdir -p "$FILES" "$WORK/nginx"
dd if=/dev/urandom of="$FILES/small.bin" bs=1K count="$SMALL_KIB" iflag=fullblock status=none
chmod 644 "$FILES/small.bin"

# wait_for URL PID: until URL answers 2xx, or PID exits
wait_for() {
  for _ in $(seq 900); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# count NAME PID URL: zeroes PID's counters, runs wrk on URL, dumps them; sets
# COUNT_N (requests) and COUNT_IR (instructions). Not run in a subshell, so its die ends
# the script.
count() {
  local out n ir
  wrk -t1 -c4 -d3s "$3" >/dev/null # warm-up (caches, connections, lazy statics)
  callgrind_control --zero "$2" >/dev/null 2>&1 || die "callgrind_control --zero $1 failed"
  out=$(wrk -t1 -c4 -d"$DURATION" "$3")
  grep -qE 'Non-2xx|Socket errors' <<<"$out" && { printf '%s\n' "$out" >&2; die "wrk saw errors against $1"; }
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  rm -f "$WORK/cg.$1".*
  callgrind_control --dump "$2" >/dev/null 2>&1 || die "callgrind_control --dump $1 failed"
  for _ in $(seq 50); do ls "$WORK/cg.$1".* >/dev/null 2>&1 && break; sleep 0.2; done
  sleep 0.5
  ir=$(cat "$WORK/cg.$1".* | awk '/^summary:/ { s += $2 } END { print s + 0 }')
  [ "${n:-0}" -gt 0 ] && [ "$ir" -gt 0 ] || die "no count for $1 (requests ${n:-0}, instructions $ir)"
  COUNT_N=$n
  COUNT_IR=$ir
}

# ---------------------------------------------------------------- ods
PASSWORD=bench-$RANDOM-$RANDOM
ODS_PORT=$(free_port)
log "starting ods under callgrind on 127.0.0.1:$ODS_PORT"
env "${ODS_UNSET[@]}" ODS_LOG=warn ODS_INITIAL_ADMIN_PASSWORD="$PASSWORD" \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.ods.%p" \
  "$ODS_BIN" serve --listen "127.0.0.1:$ODS_PORT" --data-dir "$WORK/ods-data" \
  >"$WORK/ods.out" 2>"$WORK/ods.err" &
ODS_PID=$!
PIDS+=("$ODS_PID")
ODS_URL=http://127.0.0.1:$ODS_PORT
wait_for "$ODS_URL/api/openapi.json" "$ODS_PID" || { tail -n 20 "$WORK/ods.err" >&2; die "ods did not start"; }
code=$(curl -sS -u "admin:$PASSWORD" -F "file=@$FILES/small.bin;filename=small.pkg" -F stage=Prod \
  -o "$WORK/upload.json" -w '%{http_code}' "$ODS_URL/api/admin/upload")
[ "$code" = 201 ] || { cat "$WORK/upload.json" >&2; die "upload answered $code"; }

# ---------------------------------------------------------------- nginx
NGINX_PORT=$(free_port)
static_nginx_conf "$WORK/nginx" "$NGINX_PORT" "$FILES" "master_process off;" "worker_processes 1;"
log "starting nginx under callgrind on 127.0.0.1:$NGINX_PORT"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.nginx.%p" \
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL=http://127.0.0.1:$NGINX_PORT
wait_for "$NGINX_URL/share/small.bin" "$NGINX_PID" || { cat "$WORK/nginx/stderr" >&2; die "nginx did not start"; }

# ---------------------------------------------------------------- counts
cmp -s <(curl -sSf "$ODS_URL/share/small.pkg") "$FILES/small.bin" || die "ods served other bytes"
cmp -s <(curl -sSf "$NGINX_URL/share/small.bin") "$FILES/small.bin" || die "nginx served other bytes"
ods_per=(); nginx_per=(); ratios=()
for i in $(seq "$RUNS"); do
  count ods "$ODS_PID" "$ODS_URL/share/small.pkg"
  ods_per+=("$((COUNT_IR / COUNT_N))")
  count nginx "$NGINX_PID" "$NGINX_URL/share/small.bin"
  nginx_per+=("$((COUNT_IR / COUNT_N))")
  ratios+=("$(ratio "${ods_per[-1]}" "${nginx_per[-1]}")")
  log "  run $i: ods ${ods_per[-1]}, nginx ${nginx_per[-1]} instructions per request (${ratios[-1]}x)"
done
ods_med=$(median "${ods_per[@]}")
nginx_med=$(median "${nginx_per[@]}")
ratio_med=$(ratio "$ods_med" "$nginx_med")

fmt='%-52s %14s %14s %8s\n'
printf '\n'
printf "$fmt" "metric" "ods" "nginx" "ratio"
printf "$fmt" "instructions per ${SMALL_KIB} KiB download (median)" "$ods_med" "$nginx_med" "$ratio_med"
printf '(ratio = ods / nginx: how many times nginx'"'"'s user-space work ods does per request)\n'

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/instructions-$(date -u +%Y%m%dT%H%M%SZ).json
cat >"$OUT" <<EOF
{
  "benchmark": "instructions",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "machine": {"cores": $(nproc), "kernel": "$(uname -r)"},
  "small_file_bytes": $((SMALL_KIB * 1024)),
  "command": "valgrind --tool=callgrind; wrk -t1 -c4 -d$DURATION",
  "runs": $RUNS,
  "ods_instructions_per_request": $(jarr "${ods_per[@]}"),
  "nginx_instructions_per_request": $(jarr "${nginx_per[@]}"),
  "ratio_per_run": $(jarr "${ratios[@]}"),
  "ods_median": $ods_med,
  "nginx_median": $nginx_med,
  "ratio": $ratio_med
}
EOF
jq . "$OUT" >/dev/null 2>&1 || die "wrote invalid JSON to $OUT"
printf '\nwrote %s\n' "${OUT#"$ROOT"/}"
