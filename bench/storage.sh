#!/usr/bin/env bash
# S3 storage vs local disk, in one run: a 1 GiB upload (curl multipart, new content
# each run) and a 1 GiB download (curl -o /dev/null) from one ods on local blobs and
# one on S3 storage (s3s-fs, a real S3-compatible server on loopback, keeping its
# objects on the same disk), best of RUNS each; ratios are S3 / local. Also the peak
# RSS of each ods. Prints a table and writes bench/results/storage-<date>.json.
# Not a test: run it by hand.
#
#   bench/storage.sh                 RUNS=3 BIG_MIB=1024 by default
#   ODS_BIN=/path/to/ods bench/storage.sh
#
# Needs curl, jq and s3s-fs (cargo install s3s-fs@0.14.1 --features binary --locked).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
need=()
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
install_packages "${need[@]}"
command -v s3s-fs >/dev/null || cargo install --locked s3s-fs@0.14.1 --features binary ||
  die "s3s-fs is needed"

build_ods
bench_workspace ods-storage-bench
BIG=$WORK/big.bin
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- s3s-fs
S3_PORT=$(free_port)
BUCKET=ods-bench
mkdir -p "$WORK/s3/$BUCKET"
s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key bench-key --secret-key bench-secret-0123456789 \
  "$WORK/s3" >"$WORK/s3s.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do port_free "$S3_PORT" || break; sleep 0.1; done

# start_ods NAME [VAR=VALUE...]: starts an ods with its own data directory; sets
# URL_<NAME> and PID_<NAME>.
start_ods() {
  local name=$1; shift
  env "${ODS_UNSET[@]}" ODS_LOG=warn ODS_INITIAL_ADMIN_PASSWORD=bench-admin-pw "$@" \
    "$ODS_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$! url=""
  PIDS+=("$pid")
  for _ in $(seq 300); do
    url=$(sed -n 's/^ODS listening on \(http:[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; die "ods ($name) exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || die "ods ($name) did not print its URL"
  printf -v "URL_$name" %s "$url"
  printf -v "PID_$name" %s "$pid"
}
start_ods local
start_ods s3 ODS_STORAGE="s3://$BUCKET/bench" AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-0123456789
AUTH=admin:bench-admin-pw

timed_upload() { # URL NAME -> seconds (lib.sh's upload is the untimed admin call)
  local t
  t=$(curl -sS -u "$AUTH" -F "file=@$BIG;filename=$2" -F stage=Prod -o "$WORK/up.json" \
        -w '%{http_code} %{time_total}' "$1/api/admin/upload")
  [ "${t%% *}" = 201 ] || { cat "$WORK/up.json" >&2; die "upload to $1 answered ${t%% *}"; }
  echo "${t#* }"
}
download() { # URL NAME -> seconds
  local out
  out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1/share/$2")
  read -r code size secs <<<"$out"
  [ "$code" = 200 ] && [ "$size" = "$BIG_SIZE" ] || die "download from $1: $out"
  echo "$secs"
}

up_local=(); up_s3=(); dl_local=(); dl_s3=()
for i in $(seq "$RUNS"); do
  log "run $i/$RUNS: new ${BIG_MIB} MiB file, upload and download on local and on S3"
  dd if=/dev/urandom of="$BIG" bs=1M count="$BIG_MIB" iflag=fullblock status=none
  BIG_SIZE=$(stat -c %s "$BIG")
  warm_page_cache "$BIG_MIB"
  up_local+=("$(timed_upload "$URL_local" "big-$i.bin")")
  warm_page_cache $((2 * BIG_MIB))
  up_s3+=("$(timed_upload "$URL_s3" "big-$i.bin")")
  dl_local+=("$(download "$URL_local" "big-$i.bin")")
  dl_s3+=("$(download "$URL_s3" "big-$i.bin")")
done
rss_local=$(status_kib "$PID_local" VmHWM)
rss_s3=$(status_kib "$PID_s3" VmHWM)

ul=$(mbps "$BIG_SIZE" "$(best "${up_local[@]}")"); us=$(mbps "$BIG_SIZE" "$(best "${up_s3[@]}")")
dll=$(mbps "$BIG_SIZE" "$(best "${dl_local[@]}")"); dls=$(mbps "$BIG_SIZE" "$(best "${dl_s3[@]}")")
git_state
printf '\nODS storage benchmark (commit %s%s, %s cores, %s MiB, best of %s; S3 = s3s-fs on loopback)\n' \
  "$commit" "$([ "$dirty" = true ] && echo ', uncommitted changes')" "$(nproc)" "$BIG_MIB" "$RUNS"
fmt='%-28s %10s %10s %8s\n'
printf "$fmt" metric s3 local "s3/local"
printf "$fmt" "upload MB/s" "$us" "$ul" "$(ratio "$us" "$ul")"
printf "$fmt" "download MB/s" "$dls" "$dll" "$(ratio "$dls" "$dll")"
printf "$fmt" "ods peak RSS MiB" "$((rss_s3 / 1024))" "$((rss_local / 1024))" ""

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/storage-$(date -u +%Y%m%dT%H%M%SZ).json
cat >"$OUT" <<EOF2
{
  "benchmark": "storage",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "machine": {"cores": $(nproc), "kernel": "$(uname -r)"},
  "s3_server": "s3s-fs 0.14.1 on loopback",
  "file_bytes": $BIG_SIZE,
  "runs": $RUNS,
  "upload_seconds": {"s3": $(jarr "${up_s3[@]}"), "local": $(jarr "${up_local[@]}")},
  "download_seconds": {"s3": $(jarr "${dl_s3[@]}"), "local": $(jarr "${dl_local[@]}")},
  "upload_mb_per_s": {"s3": $us, "local": $ul, "ratio": $(ratio "$us" "$ul")},
  "download_mb_per_s": {"s3": $dls, "local": $dll, "ratio": $(ratio "$dls" "$dll")},
  "peak_rss_kib": {"s3": $rss_s3, "local": $rss_local}
}
EOF2
log "results in $OUT"
