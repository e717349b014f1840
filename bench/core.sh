#!/usr/bin/env bash
# Core benchmark of one ODS server against reference tools, in one run, on loopback:
#   - 1 GiB upload+ingest (curl multipart to ods, new content each run so each pays its
#     fsync) vs a raw TCP receive-to-file of the same bytes (socat, as in STACK.md with
#     its default 8 KiB buffer; also with fsync, and with 1 MiB buffers); ods peak RSS
#     during the uploads and disk overhead (max bytes used in the data dir during an
#     upload / file size);
#   - 1 GiB download (curl -o /dev/null) from ods /share/<name> vs nginx (sendfile on);
#   - 64 KiB downloads under wrk -t2 -c64 -d10s, ods vs nginx, WRK_RUNS (5) times
#     alternating; the ratio is the median of the per-run ratios (wrk and the server
#     share 2 cores, so a single run varies by +-15%).
# Prints a table (ratio = ods / reference, >= 1.0 means ods is as fast; the ingest
# ratio also as the median of the per-run ratios) and writes the
# same as JSON to bench/results/core-<date>.json. Not a test: run it by hand.
#
#   bench/core.sh                    # builds ods in release first
#   ODS_BIN=/path/to/ods bench/core.sh
#   BENCH_RUNS=3 WRK_RUNS=5 WRK_DURATION=10s BIG_MIB=1024 bench/core.sh
#
# Needs nginx-light, wrk, socat, curl, jq (installed with apt-get when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
SMALL_KIB=${SMALL_KIB:-64}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_RUNS=${WRK_RUNS:-5}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- tools
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v socat >/dev/null || need+=(socat)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
install_packages "${need[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------- build
build_ods

# ---------------------------------------------------------------- workspace + cleanup
bench_workspace ods-bench
chmod 755 "$WORK" # nginx workers (www-data) must read the files

# ---------------------------------------------------------------- files
FILES=$WORK/files
mkdir -p "$FILES" "$WORK/nginx"
BIG=$FILES/big.bin
SMALL=$FILES/small.bin
log "creating ${BIG_MIB} MiB and ${SMALL_KIB} KiB files from /dev/urandom in $WORK"
dd if=/dev/urandom of="$BIG" bs=1M count="$BIG_MIB" iflag=fullblock status=none
dd if=/dev/urandom of="$SMALL" bs=1K count="$SMALL_KIB" iflag=fullblock status=none
chmod 644 "$BIG" "$SMALL"
BIG_SIZE=$(stat -c %s "$BIG")
if [ "$BIG_MIB" = 1024 ]; then BIG_LABEL="1 GiB"; else BIG_LABEL="$BIG_MIB MiB"; fi

# ---------------------------------------------------------------- ods
DATA=$WORK/ods-data
log "starting ods"
# The default admin password may only be changed: start with a bench password instead.
BENCH_PASSWORD=bench-$RANDOM-$RANDOM
env "${ODS_UNSET[@]}" ODS_LOG=warn ODS_INITIAL_ADMIN_PASSWORD="$BENCH_PASSWORD" \
  "$ODS_BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$WORK/ods.out" 2>"$WORK/ods.err" &
ODS_PID=$!
PIDS+=("$ODS_PID")
ODS_URL=""
for _ in $(seq 300); do
  ODS_URL=$(sed -n 's/^ODS listening on \(http:[^ ]*\).*/\1/p' "$WORK/ods.out" | head -n 1)
  [ -n "$ODS_URL" ] && break
  kill -0 "$ODS_PID" 2>/dev/null || { cat "$WORK/ods.err" >&2; die "ods exited at start"; }
  sleep 0.1
done
[ -n "$ODS_URL" ] || die "ods did not print its URL"
AUTH=admin:$BENCH_PASSWORD

# ---------------------------------------------------------------- nginx
NGINX_PORT=$(free_port)
static_nginx_conf "$WORK/nginx" "$NGINX_PORT" "$FILES"
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 100); do
  curl -sf -o /dev/null "$NGINX_URL/share/small.bin" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx/stderr" "$WORK/nginx/error.log" >&2; die "nginx exited at start"; }
  sleep 0.1
done
curl -sf -o /dev/null "$NGINX_URL/share/small.bin" || die "nginx does not serve the files"

# ---------------------------------------------------------------- upload vs socat
# Disk and memory samplers for the upload phase.
du_bytes() { du -s -B1 "$DATA" 2>/dev/null | cut -f1 | head -n 1; }
sample_du() { # writes the max bytes used in the data dir to $1 until killed
  local max=0 cur
  while :; do
    cur=$(du_bytes) || true
    # (written aside then renamed: being killed mid-write must not empty the file)
    [ "${cur:-0}" -gt "$max" ] && { max=$cur; echo "$max" >"$1.new"; mv -f "$1.new" "$1"; }
    sleep 0.1
  done
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# CPU seconds (user + system) process $1 has used so far.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }
# One raw TCP receive-to-file of $BIG with socat (extra options in "$@"). Prints the
# seconds to receive, and to receive and fsync.
socat_receive() {
  local sp listener t0 t1 t2
  warm_page_cache "$BIG_MIB"
  sp=$(free_port)
  socat -u "$@" "TCP-LISTEN:$sp,bind=127.0.0.1,reuseaddr" "OPEN:$WORK/socat.out,creat,trunc" &
  listener=$!
  # (probing with a connection would use up the listener's single accept)
  for _ in $(seq 200); do ss -Hltn "sport = :$sp" | grep -q . && break; sleep 0.02; done
  t0=$(now)
  socat -u "$@" "FILE:$BIG" "TCP:127.0.0.1:$sp"
  wait "$listener"
  t1=$(now)
  sync "$WORK/socat.out" # what ods does before its commit (fsync), timed apart
  t2=$(now)
  [ "$(stat -c %s "$WORK/socat.out")" = "$BIG_SIZE" ] || die "socat received a short file"
  rm -f "$WORK/socat.out"
  echo "$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2")"
}

log "upload: $RUNS x $BIG_LABEL to ods; socat raw receive, default (8 KiB) and 1 MiB buffers"
up_times=(); up_cpu=(); socat_times=(); socat_sync_times=(); socat_big_times=(); overheads=()
for i in $(seq "$RUNS"); do
  # New content each run (first 8 bytes), so every ods upload stores a new blob and
  # pays its fsync, as a real upload does; socat receives the same bytes.
  printf '%08d' "$i" | dd of="$BIG" bs=8 count=1 conv=notrunc status=none
  # ods, under a new name each run (no replace: no collector running meanwhile)
  warm_page_cache "$BIG_MIB"
  base=$(du_bytes)
  echo "$base" >"$WORK/du.max"
  sample_du "$WORK/du.max" &
  sampler=$!
  PIDS+=("$sampler")
  cpu0=$(cpu_s "$ODS_PID")
  t=$(curl -sS -u "$AUTH" -F "file=@$BIG;filename=big-$i.bin" -F stage=Prod \
        -o "$WORK/upload.json" -w '%{http_code} %{time_total}' "$ODS_URL/api/admin/upload")
  up_cpu+=("$(awk -v a="$cpu0" -v b="$(cpu_s "$ODS_PID")" 'BEGIN { printf "%.2f", b - a }')")
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  [ "${t%% *}" = 201 ] || { cat "$WORK/upload.json" >&2; die "upload answered ${t%% *}"; }
  up_times+=("${t#* }")
  overheads+=("$(awk -v m="$(cat "$WORK/du.max")" -v b="$base" -v s="$BIG_SIZE" 'BEGIN { printf "%.3f", (m - b) / s }')")
  # socat: receive to a file on the same disk, as briefed (socat's default 8 KiB
  # buffer: the reference figures of STACK.md), and with 1 MiB buffers
  out=$(socat_receive); read -r a b <<<"$out"
  socat_times+=("$a"); socat_sync_times+=("$b")
  out=$(socat_receive -b 1048576); read -r a b <<<"$out"
  socat_big_times+=("$a")
  log "  run $i: ods ${up_times[-1]} s (${up_cpu[-1]} CPU-s in ods, disk ${overheads[-1]}x), socat ${socat_times[-1]} s (+fsync ${socat_sync_times[-1]} s), socat -b 1M ${socat_big_times[-1]} s"
done
UP_RSS_KIB=$(status_kib "$ODS_PID" VmHWM)
sha_ods=$(jq -r .sha256 "$WORK/upload.json")
sha_file=$(sha256sum "$BIG" | cut -d' ' -f1)
[ "$sha_ods" = "$sha_file" ] || die "ods computed sha256 $sha_ods, the file has $sha_file"

curl -fsS -u "$AUTH" -F "file=@$SMALL" -F stage=Prod -o /dev/null "$ODS_URL/api/admin/upload"

# ---------------------------------------------------------------- 1 GiB download
log "download: $RUNS x $BIG_LABEL from ods and nginx (alternating)"
dl() { # url -> seconds; checks the size
  local out
  out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1")
  set -- $out
  [ "$1" = 200 ] && [ "$2" = "$BIG_SIZE" ] || die "download: status $1, $2 bytes"
  echo "$3"
}
dl_ods=(); dl_nginx=()
for i in $(seq "$RUNS"); do
  t=$(dl "$ODS_URL/share/big-$RUNS.bin"); dl_ods+=("$t")
  t=$(dl "$NGINX_URL/share/big.bin"); dl_nginx+=("$t")
  log "  run $i: ods ${dl_ods[-1]} s, nginx ${dl_nginx[-1]} s"
done

# ---------------------------------------------------------------- 64 KiB under wrk
wrk_rps() { # url -> req/s; refuses runs with errors or non-2xx answers
  local out
  out=$(wrk -t2 -c64 -d"$WRK_DURATION" "$1")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "wrk saw errors against $1"
  fi
  awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}
log "wrk -t2 -c64 -d$WRK_DURATION on the ${SMALL_KIB} KiB file: $WRK_RUNS x ods, then nginx (alternating)"
rps_ods_runs=(); rps_nginx_runs=(); rps_ratios=()
for i in $(seq "$WRK_RUNS"); do
  # (wrk_rps runs in a subshell: its die ends only that, so check what it printed)
  rps_ods_runs+=("$(wrk_rps "$ODS_URL/share/small.bin")")
  [ -n "${rps_ods_runs[-1]}" ] || die "wrk against ods failed"
  rps_nginx_runs+=("$(wrk_rps "$NGINX_URL/share/small.bin")")
  [ -n "${rps_nginx_runs[-1]}" ] || die "wrk against nginx failed"
  rps_ratios+=("$(ratio "${rps_ods_runs[-1]}" "${rps_nginx_runs[-1]}")")
  log "  run $i: ods ${rps_ods_runs[-1]} req/s, nginx ${rps_nginx_runs[-1]} req/s (${rps_ratios[-1]})"
done
rps_ods=$(median "${rps_ods_runs[@]}")
rps_nginx=$(median "${rps_nginx_runs[@]}")
rps_ratio_median=$(median "${rps_ratios[@]}")
ALL_RSS_KIB=$(status_kib "$ODS_PID" VmHWM)

# ---------------------------------------------------------------- report
up_best=$(best "${up_times[@]}")
socat_best=$(best "${socat_times[@]}")
socat_sync_best=$(best "${socat_sync_times[@]}")
socat_big_best=$(best "${socat_big_times[@]}")
dl_ods_best=$(best "${dl_ods[@]}")
dl_nginx_best=$(best "${dl_nginx[@]}")
overhead=$(printf '%s\n' "${overheads[@]}" | sort -g | tail -n 1)
# The ingest ratio of each run (against that run's socat), and their median.
up_ratios=()
for i in "${!up_times[@]}"; do
  up_ratios+=("$(ratio "${socat_times[$i]}" "${up_times[$i]}")")
done
up_ratio_median=$(median "${up_ratios[@]}")
up_ods_mbps=$(mbps "$BIG_SIZE" "$up_best")
up_ref_mbps=$(mbps "$BIG_SIZE" "$socat_best")
up_ref_sync_mbps=$(mbps "$BIG_SIZE" "$socat_sync_best")
up_ref_big_mbps=$(mbps "$BIG_SIZE" "$socat_big_best")
dl_ods_mbps=$(mbps "$BIG_SIZE" "$dl_ods_best")
dl_ref_mbps=$(mbps "$BIG_SIZE" "$dl_nginx_best")
rss_up_mib=$(awk -v k="$UP_RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
rss_all_mib=$(awk -v k="$ALL_RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
git_state

printf '\nODS core benchmark (commit %s%s, %s cores, %s MiB file, best of %s)\n' \
  "$commit" "$([ "$dirty" = true ] && echo ', uncommitted changes')" "$(nproc)" "$BIG_MIB" "$RUNS"
fmt='%-40s %12s %12s %8s\n'
printf "$fmt" metric ods reference ratio
printf "$fmt" "upload+ingest MB/s (ref: socat)" "$up_ods_mbps" "$up_ref_mbps" "$(ratio "$up_ods_mbps" "$up_ref_mbps")"
printf "$fmt" "  median of the per-run ingest ratios" "" "" "$up_ratio_median"
printf "$fmt" "upload+ingest MB/s (ref: socat+fsync)" "$up_ods_mbps" "$up_ref_sync_mbps" "$(ratio "$up_ods_mbps" "$up_ref_sync_mbps")"
printf "$fmt" "upload+ingest MB/s (ref: socat -b 1MiB)" "$up_ods_mbps" "$up_ref_big_mbps" "$(ratio "$up_ods_mbps" "$up_ref_big_mbps")"
printf "$fmt" "$BIG_LABEL download MB/s (ref: nginx)" "$dl_ods_mbps" "$dl_ref_mbps" "$(ratio "$dl_ods_mbps" "$dl_ref_mbps")"
printf "$fmt" "${SMALL_KIB} KiB req/s, wrk -c64 (ref: nginx)" "$rps_ods" "$rps_nginx" "$rps_ratio_median"
printf "$fmt" "ods CPU-s per upload (median)" "$(median "${up_cpu[@]}")" "" ""
printf "$fmt" "disk overhead during upload (x file)" "$overhead" "1.0" ""
printf "$fmt" "ods peak RSS MiB, after uploads" "$rss_up_mib" "" ""
printf "$fmt" "ods peak RSS MiB, whole run" "$rss_all_mib" "" ""

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/core-$(date -u +%Y%m%dT%H%M%SZ).json
cat >"$OUT" <<EOF
{
  "benchmark": "core",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "machine": {"cores": $(nproc), "kernel": "$(uname -r)", "mem_total_kib": $(awk '/MemTotal/ { print $2 }' /proc/meminfo)},
  "big_file_bytes": $BIG_SIZE,
  "small_file_bytes": $((SMALL_KIB * 1024)),
  "runs": $RUNS,
  "upload": {
    "ods_seconds": $(jarr "${up_times[@]}"),
    "socat_seconds": $(jarr "${socat_times[@]}"),
    "socat_plus_fsync_seconds": $(jarr "${socat_sync_times[@]}"),
    "socat_1mib_buffer_seconds": $(jarr "${socat_big_times[@]}"),
    "ods_mb_per_s": $up_ods_mbps,
    "socat_mb_per_s": $up_ref_mbps,
    "socat_plus_fsync_mb_per_s": $up_ref_sync_mbps,
    "socat_1mib_buffer_mb_per_s": $up_ref_big_mbps,
    "ratio": $(ratio "$up_ods_mbps" "$up_ref_mbps"),
    "ratio_per_run": $(jarr "${up_ratios[@]}"),
    "ratio_median": $up_ratio_median,
    "ratio_vs_socat_plus_fsync": $(ratio "$up_ods_mbps" "$up_ref_sync_mbps"),
    "ratio_vs_socat_1mib_buffer": $(ratio "$up_ods_mbps" "$up_ref_big_mbps"),
    "ods_cpu_seconds": $(jarr "${up_cpu[@]}"),
    "disk_overhead": $overhead,
    "disk_overhead_per_run": $(jarr "${overheads[@]}"),
    "ods_peak_rss_mib": $rss_up_mib
  },
  "download_1gib": {
    "ods_seconds": $(jarr "${dl_ods[@]}"),
    "nginx_seconds": $(jarr "${dl_nginx[@]}"),
    "ods_mb_per_s": $dl_ods_mbps,
    "nginx_mb_per_s": $dl_ref_mbps,
    "ratio": $(ratio "$dl_ods_mbps" "$dl_ref_mbps")
  },
  "wrk_small": {
    "command": "wrk -t2 -c64 -d$WRK_DURATION",
    "ods_req_per_s": $rps_ods,
    "nginx_req_per_s": $rps_nginx,
    "ods_req_per_s_per_run": $(jarr "${rps_ods_runs[@]}"),
    "nginx_req_per_s_per_run": $(jarr "${rps_nginx_runs[@]}"),
    "ratio_per_run": $(jarr "${rps_ratios[@]}"),
    "ratio": $rps_ratio_median
  },
  "ods_peak_rss_mib": $rss_all_mib
}
EOF
jq . "$OUT" >/dev/null 2>&1 || die "wrote invalid JSON to $OUT"
printf '\nwrote %s\n' "${OUT#"$ROOT"/}"
