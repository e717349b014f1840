#!/usr/bin/env bash
# Several nodes, one site (issue 10: "the aggregate download throughput of two nodes
# against one"). Two `ods serve` nodes share one fresh PostgreSQL database (created in
# the local server, dropped at exit), one blob directory and the same keys, behind a
# real nginx running the repo's load-balancer config (deploy/nginx/ods-site.conf, its
# node addresses and listen port replaced, as tests/multinode.rs does). A package set
# is uploaded through node 1 (one BIG_MIB file and SMALL_COUNT x SMALL_KIB files);
# then, BENCH_RUNS times, with wrk through the same nginx:
#   - ONE node in the upstream (node 2 marked `down`), then TWO nodes (nginx reloaded);
#   - nginx serving the same files from disk itself (sendfile): the reference.
# Two workloads: the big file with WRK_BIG_CONNS connections, and the small files (each
# request the next of them, round robin) with WRK_CONNS connections. Prints req/s and
# MB/s of each (median of the runs), the ratio two/one and each against nginx, and how
# the two-node requests were shared; writes the same as JSON to
# bench/results/nodes-<date>.json. Not a test: run it by hand.
#
#   bench/nodes.sh                    # builds ods in release first
#   ODS_BIN=/path/to/ods BENCH_RUNS=3 bench/nodes.sh
#   BIG_MIB=64 SMALL_COUNT=50 WRK_DURATION=5s bench/nodes.sh
#   PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres bench/nodes.sh   # (the defaults)
#
# Needs a PostgreSQL server that PG_USER may create databases on (trust or PGPASSWORD),
# and nginx-light, wrk, curl, jq, psql (installed with apt-get when missing). On 2
# cores the nodes, nginx and wrk share the CPUs: two nodes can only gain what the
# machine has left; read the ratio with the machine's core count beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
BIG_MIB=${BIG_MIB:-256}
SMALL_COUNT=${SMALL_COUNT:-200}
SMALL_KIB=${SMALL_KIB:-64}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-64}
WRK_BIG_CONNS=${WRK_BIG_CONNS:-8}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ods-site.conf allows 64 connections per client address (limit_conn): more would be
# refused with 503, which wrk_run treats as a failed run.
[ "$WRK_CONNS" -le 64 ] && [ "$WRK_BIG_CONNS" -le 64 ] ||
  die "WRK_CONNS and WRK_BIG_CONNS must be at most 64 (ods-site.conf's limit_conn per address)"

# ---------------------------------------------------------------- tools
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v psql >/dev/null || need+=(postgresql-client)
install_packages "${need[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------- build
build_ods

# ---------------------------------------------------------------- workspace + cleanup
bench_workspace ods-bench-nodes
chmod 755 "$WORK" # nginx workers (www-data) must read the files
PSQL=(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qAt)
DB_NAME=ods_bench_nodes_$$_$RANDOM
DB_MADE=""
cleanup_more() {
  # The nodes are stopped by now (cleanup kills PIDS first).
  [ -n "$DB_MADE" ] && "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
  return 0
}
"${PSQL[@]}" -c "CREATE DATABASE $DB_NAME" >/dev/null ||
  die "cannot create a database on PostgreSQL $PG_HOST:$PG_PORT as $PG_USER (set PG_HOST, PG_PORT, PG_USER, PGPASSWORD)"
DB_MADE=1
DB_URL=postgres://$PG_USER${PGPASSWORD:+:$PGPASSWORD}@$PG_HOST:$PG_PORT/$DB_NAME

# ---------------------------------------------------------------- files
FILES=$WORK/files
mkdir -p "$FILES" "$WORK/nginx" "$WORK/blobs"
log "creating a ${BIG_MIB} MiB file and $SMALL_COUNT x ${SMALL_KIB} KiB files in $WORK"
dd if=/dev/urandom of="$FILES/big.bin" bs=1M count="$BIG_MIB" iflag=fullblock status=none
SMALL_NAMES=()
for i in $(seq -w 1 "$SMALL_COUNT"); do
  dd if=/dev/urandom of="$FILES/small-$i.bin" bs=1K count="$SMALL_KIB" iflag=fullblock status=none
  SMALL_NAMES+=("small-$i.bin")
done
chmod 644 "$FILES"/*
BIG_SIZE=$(stat -c %s "$FILES/big.bin")

# ---------------------------------------------------------------- the site: two nodes
BENCH_PASSWORD=bench-$RANDOM-$RANDOM
SITE_SECRET=bench-site-secret-$RANDOM-$RANDOM-$RANDOM
SITE_DBKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -A NODE_PID
# start_node NAME: starts node NAME of the site; fills SRV_URL[NAME] and NODE_PID[NAME].
start_node() {
  local name=$1 url=""
  env "${ODS_UNSET[@]}" ODS_LOG=warn ODS_INITIAL_ADMIN_PASSWORD="$BENCH_PASSWORD" \
    DATABASE_URL="$DB_URL" SECRET_KEY="$SITE_SECRET" DATABASE_KEY="$SITE_DBKEY" \
    ODS_STORAGE=local ODS_BLOB_DIR="$WORK/blobs" ODS_NODE_NAME="$name" ODS_TRUSTED_PROXIES=127.0.0.1/32 \
    "$ODS_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name-data" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  NODE_PID[$name]=$!
  PIDS+=("$!")
  for _ in $(seq 600); do
    url=$(sed -n 's/^ODS listening on \(http:[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "${NODE_PID[$name]}" 2>/dev/null || { cat "$WORK/$name.err" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || die "$name did not print its URL"
  SRV_URL[$name]=$url
}
AUTH=admin:$BENCH_PASSWORD
log "starting node1 and node2 on PostgreSQL database $DB_NAME"
start_node node1 # migrates the database first
start_node node2

log "uploading big.bin and $SMALL_COUNT small files through node1"
sha_big=$(upload node1 "$FILES/big.bin" big.bin)
[ "$sha_big" = "$(sha256sum "$FILES/big.bin" | cut -d' ' -f1)" ] || die "node1 stored big.bin with another sha256"
for n in "${SMALL_NAMES[@]}"; do upload node1 "$FILES/$n" "$n" >/dev/null; done

# ---------------------------------------------------------------- nginx
LB_PORT=$(free_port)
DIRECT_PORT=$(free_port)
NG=$WORK/nginx
SITE_TEMPLATE=$ROOT/deploy/nginx/ods-site.conf
[ "$(grep -c '^ *server 127.0.0.1:808' "$SITE_TEMPLATE")" = 3 ] || die "ods-site.conf no longer lists three example nodes"
[ "$(grep -c 'listen 80;' "$SITE_TEMPLATE")" = 1 ] || die "ods-site.conf no longer listens on port 80"
# site_conf NODES: ods-site.conf with the example nodes replaced by ours, node2 down
# unless NODES is 2.
site_conf() {
  local down=" down"
  [ "$1" = 2 ] && down=""
  awk -v n1="${SRV_URL[node1]#http://}" -v n2="${SRV_URL[node2]#http://}" -v down="$down" -v port="$LB_PORT" '
    /^ *server 127\.0\.0\.1:808/ {
      if (!done) {
        print "    server " n1 " max_fails=2 fail_timeout=10s;"
        print "    server " n2 " max_fails=2 fail_timeout=10s" down ";"
        done = 1
      }
      next
    }
    { sub(/listen 80;/, "listen 127.0.0.1:" port ";"); print }
  ' "$SITE_TEMPLATE" >"$NG/ods-site.conf"
  # Which node answered each proxied request (buffered: logging must not be what is
  # timed).
  sed -i "s|^    location / {|    access_log $NG/upstream.log upstream buffer=256k flush=1s;\n    location / {|" "$NG/ods-site.conf"
  grep -q "upstream.log" "$NG/ods-site.conf" || die "ods-site.conf no longer has 'location / {'"
}
site_conf 1
cat >"$NG/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  log_format upstream '\$upstream_addr';
  access_log off;
  client_body_temp_path $NG/body;
  proxy_temp_path $NG/proxy;
  fastcgi_temp_path $NG/fastcgi;
  uwsgi_temp_path $NG/uwsgi;
  scgi_temp_path $NG/scgi;
  include $NG/ods-site.conf;
  # The reference: the same files from disk, by this same nginx.
  server {
    listen 127.0.0.1:$DIRECT_PORT;
    keepalive_requests 1000000;
    location /share/ { alias $FILES/; }
  }
}
EOF
"$NGINX" -t -p "$NG" -c "$NG/nginx.conf" 2>"$NG/test.err" || { cat "$NG/test.err" >&2; die "nginx refuses the config"; }
log "starting nginx: the site on 127.0.0.1:$LB_PORT, the files from disk on 127.0.0.1:$DIRECT_PORT"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" 2>"$NG/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
SRV_URL[lb]=http://127.0.0.1:$LB_PORT
SRV_URL[disk]=http://127.0.0.1:$DIRECT_PORT
for _ in $(seq 100); do
  curl -sf -o /dev/null "${SRV_URL[disk]}/share/${SMALL_NAMES[0]}" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NG/stderr" "$NG/error.log" >&2; die "nginx exited at start"; }
  sleep 0.1
done

# use_nodes N: the upstream holds N nodes (1 or 2); reloads nginx and waits until the
# new configuration answers (the old workers finish their requests and exit).
use_nodes() {
  site_conf "$1"
  "$NGINX" -p "$NG" -c "$NG/nginx.conf" -s reload 2>>"$NG/stderr" || die "nginx reload failed"
  for _ in $(seq 100); do
    [ "$(pgrep -c -P "$NGINX_PID")" -le "$(nproc)" ] && break
    sleep 0.1
  done
  sleep 0.5
}

# The same bytes everywhere: the site through nginx with each node, and nginx from disk.
for n in 1 2; do
  use_nodes "$n"
  for base in "${SRV_URL[lb]}" "${SRV_URL[node1]}" "${SRV_URL[node2]}" "${SRV_URL[disk]}"; do
    got=$(curl -sSf --noproxy '*' "$base/share/big.bin" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$sha_big" ] || die "$base/share/big.bin has sha256 $got, not $sha_big"
    got=$(curl -sSf --noproxy '*' "$base/share/${SMALL_NAMES[-1]}" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$(sha256sum "$FILES/${SMALL_NAMES[-1]}" | cut -d' ' -f1)" ] || die "$base serves another ${SMALL_NAMES[-1]}"
  done
done

# ---------------------------------------------------------------- wrk
# Round robin over the small files.
{
  printf 'local paths = {'
  for n in "${SMALL_NAMES[@]}"; do printf '"/share/%s",' "$n"; done
  printf '}\nlocal i = 0\n'
  printf 'request = function()\n  i = i %% #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
} >"$WORK/small.lua"

# wrk_run URL CONNS [SCRIPT]: prints "req/s MB/s"; a run with errors or non-2xx
# answers fails the benchmark.
wrk_run() {
  local out script=()
  [ -n "${3:-}" ] && script=(-s "$3")
  # (--timeout: one request of the big file may take seconds under load)
  out=$(wrk -t"$WRK_THREADS" -c"$2" -d"$WRK_DURATION" --timeout 60s "${script[@]}" "$1")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "wrk saw errors against $1"
  fi
  # "Transfer/sec: 1.23GB": wrk's units are powers of 1024.
  awk '/^Requests\/sec:/ { r = $2 }
       /^Transfer\/sec:/ {
         v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
         m = (u == "GB") ? 1073741824 : (u == "MB") ? 1048576 : (u == "KB") ? 1024 : 1
         b = v * m / 1e6
       }
       END { printf "%s %.1f\n", r, b }' <<<"$out"
}

log_lines() { wc -l <"$NG/upstream.log" 2>/dev/null || echo 0; }
# The requests the log saw since line $1 answered by node N, as a share (waits for the
# log buffer's flush first).
share_of() {
  sleep 1.5
  tail -n +"$(($1 + 1))" "$NG/upstream.log" | awk -v a="${SRV_URL[node1]#http://}" -v b="${SRV_URL[node2]#http://}" '
    { if (index($0, a)) n1++; else if (index($0, b)) n2++ }
    END { t = n1 + n2; if (t) printf "%.3f %.3f\n", n1 / t, n2 / t; else print "null null" }'
}

declare -A R # R[workload.target.metric] = space-separated values of the runs
add() { R[$1]="${R[$1]:-} $2"; }
SHARES_BIG=(); SHARES_SMALL=()
for run in $(seq "$RUNS"); do
  log "run $run of $RUNS"
  for nodes in 1 2; do
    use_nodes "$nodes"
    target=$([ "$nodes" = 1 ] && echo one || echo two)
    before=$(log_lines)
    out=$(wrk_run "${SRV_URL[lb]}/share/big.bin" "$WRK_BIG_CONNS") || exit 1
    read -r rps mbs <<<"$out"
    add "big.$target.rps" "$rps"; add "big.$target.mbs" "$mbs"
    [ "$nodes" = 2 ] && SHARES_BIG+=("$(share_of "$before")")
    log "  $target node(s), big file, $WRK_BIG_CONNS conns: $rps req/s, $mbs MB/s"
    before=$(log_lines)
    out=$(wrk_run "${SRV_URL[lb]}/share/" "$WRK_CONNS" "$WORK/small.lua") || exit 1
    read -r rps mbs <<<"$out"
    add "small.$target.rps" "$rps"; add "small.$target.mbs" "$mbs"
    [ "$nodes" = 2 ] && SHARES_SMALL+=("$(share_of "$before")")
    log "  $target node(s), small files, $WRK_CONNS conns: $rps req/s, $mbs MB/s"
  done
  out=$(wrk_run "${SRV_URL[disk]}/share/big.bin" "$WRK_BIG_CONNS") || exit 1
  read -r rps mbs <<<"$out"
  add big.nginx.rps "$rps"; add big.nginx.mbs "$mbs"
  log "  nginx from disk, big file: $rps req/s, $mbs MB/s"
  out=$(wrk_run "${SRV_URL[disk]}/share/" "$WRK_CONNS" "$WORK/small.lua") || exit 1
  read -r rps mbs <<<"$out"
  add small.nginx.rps "$rps"; add small.nginx.mbs "$mbs"
  log "  nginx from disk, small files: $rps req/s, $mbs MB/s"
done

# ---------------------------------------------------------------- report
med() { # key -> median of its runs
  # shellcheck disable=SC2086 # the runs are space-separated numbers
  median ${R[$1]}
}
runs_json() {
  # shellcheck disable=SC2086
  jarr ${R[$1]}
}
git_state
printf '\nODS two nodes vs one behind nginx (commit %s%s, %s cores, PostgreSQL, median of %s, wrk -t%s -d%s)\n' \
  "$commit" "$([ "$dirty" = true ] && echo ', uncommitted changes')" "$(nproc)" "$RUNS" "$WRK_THREADS" "$WRK_DURATION"
fmt='%-34s %11s %11s %11s %11s %9s %9s\n'
printf "$fmt" workload "one req/s" "two req/s" "nginx req/s" "two MB/s" "two/one" "two/nginx"
for w in big small; do
  if [ "$w" = big ]; then label="${BIG_MIB} MiB file, -c$WRK_BIG_CONNS"; else label="$SMALL_COUNT x ${SMALL_KIB} KiB, -c$WRK_CONNS"; fi
  printf "$fmt" "$label" "$(med "$w.one.rps")" "$(med "$w.two.rps")" "$(med "$w.nginx.rps")" \
    "$(med "$w.two.mbs")" "$(ratio "$(med "$w.two.mbs")" "$(med "$w.one.mbs")")" \
    "$(ratio "$(med "$w.two.mbs")" "$(med "$w.nginx.mbs")")"
  printf "$fmt" "  MB/s: one / two / nginx" "$(med "$w.one.mbs")" "$(med "$w.two.mbs")" "$(med "$w.nginx.mbs")" "" "" ""
done
printf 'two-node requests answered by node1/node2: big %s, small %s\n' "${SHARES_BIG[*]}" "${SHARES_SMALL[*]}"

shares_json() { # "a b" pairs -> [[a,b],...]
  local out=() p
  for p in "$@"; do out+=("[${p// /,}]"); done
  jarr "${out[@]}"
}
workload_json() {
  local w=$1 t
  printf '{'
  for t in one two nginx; do
    printf '"%s": {"req_per_s": %s, "mb_per_s": %s, "req_per_s_per_run": %s, "mb_per_s_per_run": %s}, ' \
      "$t" "$(med "$w.$t.rps")" "$(med "$w.$t.mbs")" "$(runs_json "$w.$t.rps")" "$(runs_json "$w.$t.mbs")"
  done
  printf '"ratio_two_to_one": %s, "ratio_two_to_nginx": %s, "ratio_one_to_nginx": %s}' \
    "$(ratio "$(med "$w.two.mbs")" "$(med "$w.one.mbs")")" \
    "$(ratio "$(med "$w.two.mbs")" "$(med "$w.nginx.mbs")")" \
    "$(ratio "$(med "$w.one.mbs")" "$(med "$w.nginx.mbs")")"
}

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/nodes-$(date -u +%Y%m%dT%H%M%SZ).json
cat >"$OUT" <<EOF
{
  "benchmark": "nodes",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "ods_bin": "$ODS_BIN",
  "machine": {"cores": $(nproc), "kernel": "$(uname -r)", "mem_total_kib": $(awk '/MemTotal/ { print $2 }' /proc/meminfo)},
  "database": "postgresql",
  "nginx_config": "deploy/nginx/ods-site.conf",
  "runs": $RUNS,
  "wrk": {"threads": $WRK_THREADS, "duration": "$WRK_DURATION", "big_connections": $WRK_BIG_CONNS, "small_connections": $WRK_CONNS},
  "big_file_bytes": $BIG_SIZE,
  "small_files": $SMALL_COUNT,
  "small_file_bytes": $((SMALL_KIB * 1024)),
  "big": $(workload_json big),
  "small": $(workload_json small),
  "two_node_share_node1_node2": {"big": $(shares_json "${SHARES_BIG[@]}"), "small": $(shares_json "${SHARES_SMALL[@]}")}
}
EOF
jq . "$OUT" >/dev/null 2>&1 || die "wrote invalid JSON to $OUT"
printf '\nwrote %s\n' "${OUT#"$ROOT"/}"
