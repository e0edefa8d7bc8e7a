#!/usr/bin/env bash
# Measures the simulated device (agent-core) idle on a socket for SECS seconds (default 60)
# against a local relay: wake-ups (context switches of all its threads), TCP payload bytes
# sent and received on its sockets (tcp_info via `ss`), and RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
repo=$(pwd)
cargo build -q --release -p relay
cargo build -q --release -p agent-core --example device
dir=$(mktemp -d)
trap 'kill $relay $dev 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir" && RUST_LOG=warn "$repo/target/release/safestream-relay" --dev --listen 127.0.0.1:$port > "$dir/banner.txt" 2>/dev/null) &
relay=$!
for _ in $(seq 50); do grep -q "device token" "$dir/banner.txt" 2>/dev/null && break; sleep 0.2; done
token=$(sed -n '/device token/{n;p}' "$dir/banner.txt" | tr -d ' ')
RUST_LOG=warn target/release/examples/device --relay ws://127.0.0.1:$port --token "$token" --state-dir "$dir/dev" > "$dir/dev.log" 2>&1 &
dev=$!
sleep 5   # connected and settled
# Sum of bytes_sent / bytes_received over the device's TCP sockets (payload, no headers).
read_io() {
  ss -tinpH 2>/dev/null | awk -v pid="pid=$dev," '
    index($0, pid) { mine = 1; next }
    mine { for (i = 1; i <= NF; i++) { if ($i ~ /^bytes_sent:/) { split($i, a, ":"); s += a[2] }
                                        if ($i ~ /^bytes_received:/) { split($i, b, ":"); r += b[2] } }
           mine = 0 }
    END { printf "%d %d", r, s }'
}
ctx() { awk '/voluntary_ctxt_switches/{s+=$2} END{print s}' /proc/$dev/status; }
threads_ctx() { local s=0; for t in /proc/$dev/task/*; do s=$((s + $(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/{x+=$2} END{print x}' $t/status))); done; echo $s; }
io0=($(read_io)); c0=$(threads_ctx)
sleep "$SECS"
io1=($(read_io)); c1=$(threads_ctx)
rss=$(awk '/VmRSS/{print $2}' /proc/$dev/status)
echo "agent idle ${SECS}s at the default heartbeat (relay pings every 25 s):"
echo "  context switches (all threads): $((c1 - c0))"
echo "  TCP payload bytes received: $((io1[0] - io0[0])), sent: $((io1[1] - io0[1])) (add ~66 B of headers per segment)"
echo "  RSS of the device process: ${rss} KiB"
grep -c '"state"' "$dir/dev.log" | sed 's/^/  state lines printed: /'
