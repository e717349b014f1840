#!/usr/bin/env bash
# WAN benchmark of the ODS network (issue 11): three sites, each an ods in its own
# network namespace, joined by veth links to a bridge (in a fourth namespace), each
# site's uplink (its egress) shaped with `tc tbf` (WAN_RATE, 200 Mbit/s by default);
# downlinks are not shaped, so a site pulling from two peers can receive ~2x one uplink.
# (`tc netem` does not work here: no latency is simulated.) In one run:
#   - rsync: site C pulls the 1 GiB file from an rsync daemon on site A (one shaped
#     link; `rsync -a --whole-file`, fresh destination each run; also timed up to a
#     `sync` of the received file, since ods fsyncs before Public and rsync does not);
#   - two peers: a new site C (fresh data dir, stage Prod) registers with A and B, which
#     both hold the package (stage Test, so C does not want it yet); the package is
#     promoted to Prod on A; timed from the promotion to Public on C. Bytes each of A
#     and B served are reported (they show how the chunks were spread);
#   - firewalled: the same with C in firewalled mode and an nftables rule in C's
#     namespace dropping every new inbound connection from A and B (only the bench
#     host may open one, for the admin API): C learns of the promotion through its
#     outbound long-polls and pulls over its own connections. C's count of signed peer
#     requests accepted must stay 0.
# C's copy is downloaded (shaping off) and its sha256 checked after each ods run.
# ratio = ods seconds / rsync seconds (goal for two peers: <= 0.55). Prints a table and
# writes the same as JSON to bench/results/wan-<date>.json. Not a test: run it by hand,
# as root (namespaces, tc, nft). Namespaces odswan-{sw,a,b,c} and the host's veth
# odswan-h are removed on exit. Servers run with their default settings (SQLite)
# except ODS_ALLOW_INSECURE_PEERS=true (plain HTTP between namespaces).
#
#   bench/wan.sh                      # builds ods in release first
#   bench/sync.sh wan                 # the same
#   ODS_BIN=/path/to/ods bench/wan.sh
#   BENCH_RUNS=3 BIG_MIB=1024 WAN_RATE=200mbit WAN_BURST=256kb WAN_NET=10.250.77 bench/wan.sh
#   WAN_TRACE=/tmp/trace bench/wan.sh # also a per-second trace of each pull (bytes, CPU)
#   WAN_ONE_PEER=1 bench/wan.sh        # also C pulling from A alone (ods over one link)
#
# Needs ip and tc (iproute2), nft, rsync, curl, jq (nftables, rsync, curl and jq are
# installed with apt-get when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
WAN_RATE=${WAN_RATE:-200mbit}
WAN_BURST=${WAN_BURST:-256kb}
WAN_LATENCY=${WAN_LATENCY:-50ms} # tbf queue: packets waiting longer are dropped
NET=${WAN_NET:-10.250.77}        # a /24 for the sites: A .1, B .2, C .3, the host .254
PORT=8080                        # every ods listens on it, in its own namespace
RSYNC_PORT=8730
ODS_LOG_LEVEL=${ODS_LOG_LEVEL:-info}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- preconditions
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, tc and nft): run it with sudo"
command -v ip >/dev/null || die "needs ip (iproute2): apt-get install iproute2"
command -v tc >/dev/null || die "needs tc (iproute2): apt-get install iproute2"
need=()
command -v nft >/dev/null || need+=(nftables)
command -v rsync >/dev/null || need+=(rsync)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
install_packages "${need[@]}"
SITES=(a b c)
declare -A IP=([a]=$NET.1 [b]=$NET.2 [c]=$NET.3)
HOST_IP=$NET.254
for n in sw "${SITES[@]}"; do
  ! ip netns list | grep -qw "odswan-$n" ||
    die "network namespace odswan-$n exists: another wan.sh runs, or one was killed (ip netns del odswan-$n)"
done
! ip -o addr show | grep -q " $NET\." || die "$NET.0/24 is in use on this host: pick another with WAN_NET"

build_ods
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine, for the record

# ---------------------------------------------------------------- workspace + cleanup
bench_workspace ods-wan-bench
NETNS_MADE=()
cleanup_more() {
  local n
  for n in "${NETNS_MADE[@]}"; do ip netns del "$n" 2>/dev/null; done
  ip link del odswan-h 2>/dev/null
}

# ---------------------------------------------------------------- network
log "network: namespaces odswan-{a,b,c} on a bridge in odswan-sw, $NET.0/24, uplinks $WAN_RATE"
ip netns add odswan-sw
NETNS_MADE+=(odswan-sw)
ip -n odswan-sw link set lo up
ip -n odswan-sw link add br0 type bridge
ip -n odswan-sw link set br0 up
for s in "${SITES[@]}"; do
  ip netns add "odswan-$s"
  NETNS_MADE+=("odswan-$s")
  ip -n "odswan-$s" link set lo up
  ip -n odswan-sw link add name "to-$s" type veth peer name eth0 netns "odswan-$s"
  ip -n odswan-sw link set "to-$s" master br0 up
  ip -n "odswan-$s" addr add "${IP[$s]}/24" dev eth0
  ip -n "odswan-$s" link set eth0 up
done
# The bench host's own unshaped link, for the admin API and the uploads.
ip link add name odswan-h type veth peer name host netns odswan-sw
ip -n odswan-sw link set host master br0 up
ip addr add "$HOST_IP/24" dev odswan-h
ip link set odswan-h up
# shape on|off: tbf on (or off) every site's uplink.
shape() {
  local s
  for s in "${SITES[@]}"; do
    if [ "$1" = on ]; then
      tc -n "odswan-$s" qdisc replace dev eth0 root tbf rate "$WAN_RATE" burst "$WAN_BURST" latency "$WAN_LATENCY"
    else
      tc -n "odswan-$s" qdisc del dev eth0 root 2>/dev/null || true
    fi
  done
}

# ---------------------------------------------------------------- ods servers
PASSWORD="wan-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
AUTH=admin:$PASSWORD
declare -A SRV_PID SRV_DIR
# start_site SITE [VAR=value...]: a fresh ods on SITE (new data dir), waits until it
# listens; then names it, sets its URL and stage (STAGE, Test by default) and, with
# FIREWALLED=true, firewalled mode.
start_site() {
  local s=$1 dir=$WORK/data-$1-$RANDOM pid url="" about
  shift
  mkdir -p "$dir"
  : >"$WORK/$s.out"
  ip netns exec "odswan-$s" env "${ODS_UNSET[@]}" -u ODS_INITIAL_ADMIN_PASSWORD ODS_LOG="$ODS_LOG_LEVEL" \
    ODS_ALLOW_INSECURE_PEERS=true ODS_INITIAL_ADMIN_PASSWORD="$PASSWORD" "$@" \
    "$ODS_BIN" serve --listen "${IP[$s]}:$PORT" --data-dir "$dir" >"$WORK/$s.out" 2>>"$WORK/$s.err" &
  pid=$!
  PIDS+=("$pid")
  SRV_PID[$s]=$pid
  SRV_DIR[$s]=$dir
  for _ in $(seq 600); do
    url=$(sed -n 's/^ODS listening on \(http:[^ ]*\).*/\1/p' "$WORK/$s.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$WORK/$s.err" >&2; die "ods on site $s exited at start"; }
    sleep 0.05
  done
  [ -n "$url" ] || die "ods on site $s did not print its URL"
  SRV_URL[$s]=http://${IP[$s]}:$PORT
  about=$(jq -nc --arg n "site-$s" --arg u "${SRV_URL[$s]}" --arg st "${STAGE:-Test}" \
    --argjson fw "${FIREWALLED:-false}" '{name: $n, url: $u, stage: $st, firewalled_mode: $fw}')
  api "$s" POST /api/admin/about 201 "$about" >/dev/null
}
# forget PID: drops a process that has been waited for from PIDS (its pid may be reused).
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop_site() {
  local pid=${SRV_PID[$1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  rm -rf "${SRV_DIR[$1]}"
}
# unregister_all SITE: SITE drops (and tells) every peer it has.
unregister_all() {
  local id
  for id in $(api "$1" GET /api/admin/registered_ods 200 | jq -r '.items[].id'); do
    api "$1" DELETE "/api/admin/registered_ods/$id" 200 >/dev/null
  done
}
# stage_on SITE FILENAME STAGE: changes the package's stage on SITE.
stage_on() {
  api "$1" PATCH "/api/admin/packages/$2" 200 "{\"stage\": \"$3\"}" >/dev/null
}
served_by() { # SITE: bytes of chunks SITE has served so far
  sync_stat "$1" chunk_bytes_served
  echo "$SYNC_STAT"
}

# ---------------------------------------------------------------- files + seed
FILES=$WORK/files
mkdir -p "$FILES"
BIG=$FILES/big.bin
log "creating a ${BIG_MIB} MiB file from /dev/urandom in $WORK"
dd if=/dev/urandom of="$BIG" bs=1M count="$BIG_MIB" iflag=fullblock status=none
BIG_SIZE=$(stat -c %s "$BIG")
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
if [ "$BIG_MIB" = 1024 ]; then BIG_LABEL="1 GiB"; else BIG_LABEL="$BIG_MIB MiB"; fi

log "seeding (unshaped): big.bin uploaded to A as Test, B registered with A pulls it"
start_site a
start_site b
register b a
sha=$(upload a "$BIG" big.bin Test)
[ "$sha" = "$BIG_SHA" ] || die "A computed sha256 $sha, the file has $BIG_SHA"
wait_public b big.bin 600
[ "$(served_sha b big.bin)" = "$BIG_SHA" ] || die "B serves another big.bin"

# The rsync daemon on A serves the source file read-only.
RS=$WORK/rsync
mkdir -p "$RS"
cat >"$RS/rsyncd.conf" <<EOF
pid file = $RS/rsyncd.pid
lock file = $RS/rsyncd.lock
log file = $RS/rsyncd.log
address = ${IP[a]}
use chroot = no
uid = $(id -u)
gid = $(id -g)
[files]
  path = $FILES
  read only = true
EOF
ip netns exec odswan-a rsync --daemon --no-detach --port "$RSYNC_PORT" --config "$RS/rsyncd.conf" 2>"$RS/stderr" &
PIDS+=("$!")
for _ in $(seq 200); do
  ip netns exec odswan-a ss -Hltn "sport = :$RSYNC_PORT" | grep -q . && break
  sleep 0.02
done
ip netns exec odswan-a ss -Hltn "sport = :$RSYNC_PORT" | grep -q . || { cat "$RS/stderr" >&2; die "rsync daemon did not listen"; }

# cpu_secs SITE: CPU seconds (user + system) the ods of SITE has used so far.
CLK_TCK=$(getconf CLK_TCK)
cpu_secs() {
  awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/${SRV_PID[$1]}/stat"
}
# trace_start FILE / trace_stop: with WAN_TRACE set, a line every second (time since
# the start; bytes served by A and B; CPU seconds of A, B and C) during a timed pull.
trace_start() {
  TRACE_PID=""
  [ -n "${WAN_TRACE:-}" ] || return 0
  mkdir -p "$WAN_TRACE"
  (
    local t0=$EPOCHREALTIME
    printf 'secs\ta_served\tb_served\ta_cpu\tb_cpu\tc_cpu\n'
    while :; do
      sync_stat a chunk_bytes_served; local sa=$SYNC_STAT
      sync_stat b chunk_bytes_served; local sb=$SYNC_STAT
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(elapsed "$t0" "$EPOCHREALTIME")" "$sa" "$sb" \
        "$(cpu_secs a)" "$(cpu_secs b)" "$(cpu_secs c)"
      nap 1
    done
  ) >"$WAN_TRACE/$1" 2>/dev/null &
  TRACE_PID=$!
  PIDS+=("$TRACE_PID")
}
trace_stop() {
  [ -n "$TRACE_PID" ] || return 0
  kill "$TRACE_PID" 2>/dev/null || true
  wait "$TRACE_PID" 2>/dev/null || true
  forget "$TRACE_PID"
}
# fw_drops: packets C's firewall has dropped so far.
fw_drops() {
  ip netns exec odswan-c nft -j list ruleset |
    jq '[.nftables[].rule? | select(.) | .expr[] | .counter? | select(.) | .packets] | add // 0'
}
# pull_run MODE: a fresh C (MODE two-peer or firewalled; one-peer: A only) registers
# with A and B, the
# package is promoted on A, timed to Public on C. Sets RUN_SECS, RUN_SYNCED, RUN_A,
# RUN_B (bytes served by each), RUN_PEER_REQ (signed requests C accepted), RUN_DROPS
# (inbound packets C's firewall dropped during the timed pull; a probe from A before it
# checks that the firewall holds), RUN_CPU (CPU seconds of A, B and C in the pull, JSON).
pull_run() {
  local mode=$1 a0 b0 fw=false
  [ "$mode" = firewalled ] && fw=true
  STAGE=Prod FIREWALLED=$fw start_site c
  if [ "$fw" = true ]; then
    ip netns exec odswan-c nft -f - <<EOF
table inet odswan {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    iif lo accept
    ip saddr $HOST_IP accept
    ct state new counter drop
  }
}
EOF
  fi
  register c a
  [ "$mode" = one-peer ] || register c b
  local drops0=0
  if [ "$fw" = true ]; then
    # The firewall holds: A cannot open a connection to C.
    ! ip netns exec odswan-a timeout 2 bash -c "exec 3<>/dev/tcp/${IP[c]}/$PORT" 2>/dev/null ||
      die "site A could open a connection to the firewalled C"
    drops0=$(fw_drops)
    # The long-polls to A and B start within one 2 s tick of the sync loop.
    sleep 3
  fi
  a0=$(served_by a)
  b0=$(served_by b)
  local cpu_a cpu_b cpu_c
  cpu_a=$(cpu_secs a); cpu_b=$(cpu_secs b); cpu_c=$(cpu_secs c)
  shape on
  trace_start "$mode-$RUN_NO.tsv"
  local t0=$EPOCHREALTIME
  stage_on a big.bin Prod
  wait_public c big.bin 900
  RUN_SECS=$(elapsed "$t0" "$PUBLIC_AT")
  trace_stop
  shape off
  RUN_CPU="{\"a\": $(awk -v x="$cpu_a" -v y="$(cpu_secs a)" 'BEGIN { printf "%.2f", y - x }'), \"b\": $(awk -v x="$cpu_b" -v y="$(cpu_secs b)" 'BEGIN { printf "%.2f", y - x }'), \"c\": $(awk -v x="$cpu_c" -v y="$(cpu_secs c)" 'BEGIN { printf "%.2f", y - x }')}"
  RUN_A=$(($(served_by a) - a0))
  RUN_B=$(($(served_by b) - b0))
  RUN_SYNCED=$(synced_in c big.bin)
  sync_stat c peer_requests
  RUN_PEER_REQ=$SYNC_STAT
  RUN_DROPS=0
  if [ "$fw" = true ]; then
    RUN_DROPS=$(($(fw_drops) - drops0))
    [ "$RUN_PEER_REQ" = 0 ] || die "firewalled C accepted $RUN_PEER_REQ signed peer requests"
  fi
  local got
  got=$(served_sha c big.bin)
  [ "$got" = "$BIG_SHA" ] || die "C serves big.bin with sha256 $got, the source has $BIG_SHA"
  unregister_all c
  stop_site c
  [ "$fw" = true ] && ip netns exec odswan-c nft delete table inet odswan
  stage_on a big.bin Test # C's next incarnation does not want it until promoted again
  return 0
}

# ---------------------------------------------------------------- runs
rsync_times=(); rsync_sync_times=(); two_times=(); two_synced=(); two_a=(); two_b=(); two_cpu=()
fw_times=(); fw_synced=(); fw_a=(); fw_b=(); fw_drops=(); fw_cpu=(); one_times=()
DEST=$WORK/rsync-dest
for i in $(seq "$RUNS"); do
  RUN_NO=$i
  log "run $i of $RUNS"
  rm -rf "$DEST" && mkdir -p "$DEST"
  shape on
  t0=$EPOCHREALTIME
  ip netns exec odswan-c rsync -a --whole-file "rsync://${IP[a]}:$RSYNC_PORT/files/big.bin" "$DEST/"
  t1=$EPOCHREALTIME
  sync "$DEST/big.bin"
  t2=$EPOCHREALTIME
  shape off
  [ "$(stat -c %s "$DEST/big.bin")" = "$BIG_SIZE" ] || die "rsync wrote a short file"
  rsync_times+=("$(elapsed "$t0" "$t1")"); rsync_sync_times+=("$(elapsed "$t0" "$t2")")
  log "  rsync A -> C: ${rsync_times[-1]} s (+sync ${rsync_sync_times[-1]} s)"

  pull_run two-peer
  two_times+=("$RUN_SECS"); two_synced+=("$RUN_SYNCED"); two_a+=("$RUN_A"); two_b+=("$RUN_B"); two_cpu+=("$RUN_CPU")
  log "  two peers -> C: $RUN_SECS s to Public (transfer $RUN_SYNCED s); A served $RUN_A, B $RUN_B bytes; CPU s $RUN_CPU; sha256 ok"

  if [ -n "${WAN_ONE_PEER:-}" ]; then
    pull_run one-peer
    one_times+=("$RUN_SECS")
    log "  one peer (A) -> C: $RUN_SECS s to Public (transfer $RUN_SYNCED s); A served $RUN_A bytes; CPU s $RUN_CPU; sha256 ok"
  fi

  pull_run firewalled
  fw_times+=("$RUN_SECS"); fw_synced+=("$RUN_SYNCED"); fw_a+=("$RUN_A"); fw_b+=("$RUN_B"); fw_drops+=("$RUN_DROPS"); fw_cpu+=("$RUN_CPU")
  log "  firewalled C from two peers: $RUN_SECS s to Public (transfer $RUN_SYNCED s); A served $RUN_A, B $RUN_B bytes; CPU s $RUN_CPU; $RUN_DROPS inbound packets dropped, 0 peer requests accepted; sha256 ok"
done
[ "$(sha256sum "$DEST/big.bin" | cut -d' ' -f1)" = "$BIG_SHA" ] || die "rsync's copy differs"

# ---------------------------------------------------------------- report
git_state
rsync_best=$(best "${rsync_times[@]}"); rsync_med=$(median "${rsync_times[@]}")
rsync_sync_best=$(best "${rsync_sync_times[@]}"); rsync_sync_med=$(median "${rsync_sync_times[@]}")
two_best=$(best "${two_times[@]}"); two_med=$(median "${two_times[@]}")
fw_best=$(best "${fw_times[@]}"); fw_med=$(median "${fw_times[@]}")
# Ratios per run (same run's rsync), then best and median of those.
two_ratios=(); fw_ratios=()
for k in "${!rsync_times[@]}"; do
  two_ratios+=("$(ratio "${two_times[$k]}" "${rsync_times[$k]}")")
  fw_ratios+=("$(ratio "${fw_times[$k]}" "${rsync_times[$k]}")")
done
two_ratio_best=$(best "${two_ratios[@]}"); two_ratio_med=$(median "${two_ratios[@]}")
fw_ratio_best=$(best "${fw_ratios[@]}"); fw_ratio_med=$(median "${fw_ratios[@]}")

printf '\nODS WAN benchmark (commit %s%s, %s cores, %s runs, uplinks tbf %s burst %s)\n' \
  "$commit" "$([ "$dirty" = true ] && echo ', uncommitted changes')" "$(nproc)" "$RUNS" "$WAN_RATE" "$WAN_BURST"
row() { printf '%-50s %10s %10s %10s\n' "$@"; }
row "$BIG_LABEL to a new site C, seconds" best median MB/s
row "rsync daemon, A -> C (one link)" "$rsync_best" "$rsync_med" "$(mbps "$BIG_SIZE" "$rsync_best")"
row "rsync daemon + sync, A -> C" "$rsync_sync_best" "$rsync_sync_med" "$(mbps "$BIG_SIZE" "$rsync_sync_best")"
row "ods, A + B -> C (promotion -> Public)" "$two_best" "$two_med" "$(mbps "$BIG_SIZE" "$two_best")"
if [ ${#one_times[@]} -gt 0 ]; then
  row "ods, A alone -> C (one link)" "$(best "${one_times[@]}")" "$(median "${one_times[@]}")" "$(mbps "$BIG_SIZE" "$(best "${one_times[@]}")")"
fi
row "ods, A + B -> firewalled C" "$fw_best" "$fw_med" "$(mbps "$BIG_SIZE" "$fw_best")"
row "ratio two peers / rsync (goal <= 0.55)" "$two_ratio_best" "$two_ratio_med" ""
row "ratio firewalled / rsync" "$fw_ratio_best" "$fw_ratio_med" ""
printf '(ratio = ods seconds / rsync seconds of the same run; best and median over runs)\n'
printf 'load average at start %s, at end %s\n' "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/wan-$(date -u +%Y%m%dT%H%M%SZ).json
cat >"$OUT" <<EOF
{
  "benchmark": "wan",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "uncommitted_changes": $dirty,
  "machine": {"cores": $(nproc), "loadavg_at_start": "$LOAD_START", "loadavg_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)", "kernel": "$(uname -r)", "mem_total_kib": $(awk '/MemTotal/ { print $2 }' /proc/meminfo), "rsync": "$(rsync --version | awk 'NR == 1 { print $3 }')"},
  "ods_bin": "$ODS_BIN",
  "runs": $RUNS,
  "file_bytes": $BIG_SIZE,
  "shaping": {"qdisc": "tbf", "where": "egress of every site (uplinks); downlinks unshaped", "rate": "$WAN_RATE", "burst": "$WAN_BURST", "latency": "$WAN_LATENCY"},
  "rsync_one_link": {
    "seconds": $(jarr "${rsync_times[@]}"),
    "plus_sync_seconds": $(jarr "${rsync_sync_times[@]}"),
    "best_seconds": $rsync_best,
    "median_seconds": $rsync_med
  },
  "two_peers": {
    "promotion_to_public_seconds": $(jarr "${two_times[@]}"),
    "transfer_seconds_reported_by_c": $(jarr "${two_synced[@]}"),
    "bytes_served_by_a": $(jarr "${two_a[@]}"),
    "bytes_served_by_b": $(jarr "${two_b[@]}"),
    "cpu_seconds": $(jarr "${two_cpu[@]}"),
    "best_seconds": $two_best,
    "median_seconds": $two_med,
    "ratio_to_rsync": $(jarr "${two_ratios[@]}"),
    "ratio_best": $two_ratio_best,
    "ratio_median": $two_ratio_med,
    "goal_ratio_at_most": 0.55,
    "sha256_verified": true
  },
  "one_peer_seconds": $(jarr "${one_times[@]}"),
  "firewalled": {
    "promotion_to_public_seconds": $(jarr "${fw_times[@]}"),
    "transfer_seconds_reported_by_c": $(jarr "${fw_synced[@]}"),
    "bytes_served_by_a": $(jarr "${fw_a[@]}"),
    "bytes_served_by_b": $(jarr "${fw_b[@]}"),
    "cpu_seconds": $(jarr "${fw_cpu[@]}"),
    "inbound_packets_dropped": $(jarr "${fw_drops[@]}"),
    "peer_requests_accepted_by_c": 0,
    "best_seconds": $fw_best,
    "median_seconds": $fw_med,
    "ratio_to_rsync": $(jarr "${fw_ratios[@]}"),
    "ratio_best": $fw_ratio_best,
    "ratio_median": $fw_ratio_med,
    "sha256_verified": true
  }
}
EOF
jq . "$OUT" >/dev/null 2>&1 || die "wrote invalid JSON to $OUT"
printf '\nwrote %s\n' "${OUT#"$ROOT"/}"
