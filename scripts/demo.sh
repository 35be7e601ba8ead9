#!/usr/bin/env bash
# c2wall end to end on this machine: a subscriber, an edge router and a network
# holding a "C&C" host, each in its own network namespace. Three tiers: a
# national centre's coordinator, the ISP's coordinator following it (each with
# its embedded store and its own signing key) and the ISP's agent run on the
# edge router; entries are published through the `c2wall` CLI at the ISP and
# at the centre; the agent enforces them with XDP; real packets are dropped;
# metrics shown. All gRPC runs over mutual TLS with certificates from a
# development CA made for the run, and every version is signed.
# Everything it creates is removed when it exits. Usage (as root): scripts/demo.sh
# (add --keep to leave it running until Enter is pressed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
keep=${1:-}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/setup.sh
say "building (first build takes about 2 minutes)"
cargo build --release --bin c2wall-agent --bin c2wall-coordinator --bin c2wall
agent_bin=$PWD/target/release/c2wall-agent
coord_bin=$PWD/target/release/c2wall-coordinator
cli_bin=$PWD/target/release/c2wall

id=c2wdemo$$
work=$(mktemp -d)
pins=/sys/fs/bpf/$id
agent_pid=
coord_pid=
centre_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$coord_pid" ] && kill "$coord_pid" 2>/dev/null && wait "$coord_pid" 2>/dev/null || true
  [ -n "$centre_pid" ] && kill "$centre_pid" 2>/dev/null && wait "$centre_pid" 2>/dev/null || true
  [ -d "$pins" ] && "$agent_bin" detach --pin-dir "$pins" >/dev/null 2>&1 || true
  for ns in sub edge net; do ip netns del "$id-$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$id-$ns" "$@"; }

say "topology: sub [198.51.100.10] -- e0 [edge] e1 -- [203.0.113.66 C&C, .77 benign, .88 suspicious] net"
for ns in sub edge net; do
  ip netns add "$id-$ns"
  ip -n "$id-$ns" link set lo up
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip -n "$id-sub" link add s0 type veth peer name e0 netns "$id-edge"
ip -n "$id-edge" link add e1 type veth peer name n0 netns "$id-net"
ip -n "$id-sub" addr add 198.51.100.10/24 dev s0
ip -n "$id-sub" addr add 2001:db8:a::10/64 dev s0 nodad
ip -n "$id-edge" addr add 198.51.100.1/24 dev e0
ip -n "$id-edge" addr add 2001:db8:a::1/64 dev e0 nodad
ip -n "$id-edge" addr add 203.0.113.1/24 dev e1
ip -n "$id-edge" addr add 2001:db8:b::1/64 dev e1 nodad
for a in 203.0.113.66/24 203.0.113.77/24 203.0.113.88/24; do ip -n "$id-net" addr add $a dev n0; done
for a in 2001:db8:b::66/64 2001:db8:b::77/64; do ip -n "$id-net" addr add $a dev n0 nodad; done
for l in "sub s0" "edge e0" "edge e1" "net n0"; do set -- $l; ip -n "$id-$1" link set "$2" up; done
ip -n "$id-sub" route add default via 198.51.100.1
ip -n "$id-sub" -6 route add default via 2001:db8:a::1
ip -n "$id-net" route add default via 203.0.113.1
ip -n "$id-net" -6 route add default via 2001:db8:b::1
in_ns edge sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

echo "203.0.113.53   # the ISP's resolver: never dropped" >"$work/allowlist.txt"

say "a development CA: certificates for the coordinators, the agent, the ISP's link to the centre and the operator"
pki=$work/pki
set -x
"$cli_bin" ca init --dir "$pki"
"$cli_bin" ca issue --dir "$pki" --role coordinator --name coordinator --ip 127.0.0.1
"$cli_bin" ca issue --dir "$pki" --role agent --name edge-demo
"$cli_bin" ca issue --dir "$pki" --role downstream --name isp-demo
"$cli_bin" ca issue --dir "$pki" --role admin --name demo
"$coord_bin" keygen --out "$work/centre.key" >"$work/centre.pub"
"$coord_bin" keygen --out "$work/signing.key" >"$work/signing.pub"
{ set +x; } 2>/dev/null
echo "the centre's version-signing public key (the ISP trusts it): $(cat "$work/centre.pub")"
echo "the ISP's version-signing public key (its agents trust it):  $(cat "$work/signing.pub")"

say "starting the centre's c2wall-coordinator (store: $work/centre.db, port 50061)"
nsenter --net="/run/netns/$id-edge" "$coord_bin" --listen 127.0.0.1:50061 \
  --store "$work/centre.db" --heartbeat 2 --signing-key "$work/centre.key" --metrics-addr 127.0.0.1:9466 \
  --tls-cert "$pki/coordinator.crt" --tls-key "$pki/coordinator.key" --tls-client-ca "$pki/ca.crt" \
  2>"$work/centre.log" &
centre_pid=$!

say "starting the ISP's c2wall-coordinator (store: $work/coordinator.db), following the centre"
cat >"$work/isp.toml" <<EOT
[[upstream]]
name = "jp-centre"
url = "https://127.0.0.1:50061"
tls_ca = "$pki/ca.crt"
tls_cert = "$pki/isp-demo.crt"
tls_key = "$pki/isp-demo.key"
trust_keys = ["$(cat "$work/centre.pub")"]
action = "drop"
EOT
cat "$work/isp.toml"
nsenter --net="/run/netns/$id-edge" "$coord_bin" --listen 127.0.0.1:50051 --config "$work/isp.toml" \
  --store "$work/coordinator.db" --heartbeat 2 --signing-key "$work/signing.key" \
  --tls-cert "$pki/coordinator.crt" --tls-key "$pki/coordinator.key" --tls-client-ca "$pki/ca.crt" \
  2>"$work/coordinator.log" &
coord_pid=$!
export C2WALL_COORDINATOR=https://127.0.0.1:50051 C2WALL_TLS_CA=$pki/ca.crt
c2wall() {
  nsenter --net="/run/netns/$id-edge" "$cli_bin" --tls-cert "$pki/demo.crt" --tls-key "$pki/demo.key" "$@"
}
for _ in $(seq 100); do c2wall history >/dev/null 2>&1 && break; sleep 0.1; done

say "starting c2wall-agent on the edge router (e0, e1), following the coordinator"
# nsenter --net (not `ip netns exec`): only the network namespace changes, so
# the pins land on the host's bpffs.
nsenter --net="/run/netns/$id-edge" "$agent_bin" -i e0 -i e1 --coordinator https://127.0.0.1:50051 \
  --tls-ca "$pki/ca.crt" --tls-cert "$pki/edge-demo.crt" --tls-key "$pki/edge-demo.key" \
  --trust-key "$(cat "$work/signing.pub")" --allowlist "$work/allowlist.txt" --pin-dir "$pins" \
  --state-dir "$work/state" --metrics-addr 127.0.0.1:9469 --report-interval 1 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do
  in_ns edge curl -sf http://127.0.0.1:9469/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
in_ns edge curl -sf http://127.0.0.1:9469/readyz

say "publishing through the CLI (documentation addresses)"
set -x
c2wall publish 203.0.113.66 2001:db8:b::66 --category mirai --reference SBL-DEMO-1 --reason "C&C seen by the centre"
c2wall publish 203.0.113.88 --action monitor --reason "suspected, watch first"
c2wall publish 192.0.2.0/24 --protocol tcp --port 443 --source feodo
{ set +x; } 2>/dev/null
sleep 0.5
c2wall list

try() { # label, command...
  local label=$1; shift
  if "$@" >/dev/null 2>&1; then echo "  $label: delivered"; else echo "  $label: no reply (dropped)"; fi
}
say "traffic from the subscriber"
try "ping 203.0.113.77 (benign)        " in_ns sub ping -c 2 -W 1 203.0.113.77
try "ping 203.0.113.66 (C&C)           " in_ns sub ping -c 2 -W 1 203.0.113.66
try "ping 2001:db8:b::77 (benign)      " in_ns sub ping -6 -c 2 -W 1 2001:db8:b::77
try "ping 2001:db8:b::66 (C&C)         " in_ns sub ping -6 -c 2 -W 1 2001:db8:b::66
try "ping 203.0.113.88 (monitor entry) " in_ns sub ping -c 2 -W 1 203.0.113.88
say "traffic from the C&C host towards the subscriber"
try "ping from 203.0.113.66            " in_ns net ping -c 2 -W 1 -I 203.0.113.66 198.51.100.10

say "withdrawing 203.0.113.66 through the CLI"
c2wall withdraw 203.0.113.66 --reason "taken down"
sleep 0.5
try "ping 203.0.113.66 (withdrawn)     " in_ns sub ping -c 2 -W 1 203.0.113.66

say "identity: no certificate, another CA's certificate, the agent's certificate: refused"
nsenter --net="/run/netns/$id-edge" "$cli_bin" publish 203.0.113.99 || true
"$cli_bin" ca init --dir "$work/rogue" >/dev/null
"$cli_bin" ca issue --dir "$work/rogue" --role admin --name mallory >/dev/null
nsenter --net="/run/netns/$id-edge" "$cli_bin" --tls-cert "$work/rogue/mallory.crt" \
  --tls-key "$work/rogue/mallory.key" publish 203.0.113.99 || true
nsenter --net="/run/netns/$id-edge" "$cli_bin" --tls-cert "$pki/edge-demo.crt" \
  --tls-key "$pki/edge-demo.key" publish 203.0.113.99 || true

say "guards: a public resolver and a /8 are refused, naming why"
c2wall publish 8.8.8.8 --reason "mistake" || true
c2wall publish 10.0.0.0/8 --reason "mistake" || true

say "kill switch: the centre puts every agent in monitor mode, then clears it"
c2wall mode monitor --reason "incident drill"
sleep 0.3
try "ping 2001:db8:b::66 (C&C, monitor mode)" in_ns sub ping -6 -c 2 -W 1 2001:db8:b::66
c2wall mode clear --reason "drill over"

say "importing a threat feed file (Spamhaus DROP format) as source spamhaus-drop"
printf '; Spamhaus DROP List (demo copy)\r\n203.0.113.64/29 ; SBL-DEMO-2\r\n198.18.0.1/15 ; SBL-BAD\r\n; EOF\r\n' >"$work/drop.txt"
c2wall feed check --format spamhaus-drop "$work/drop.txt" || true
c2wall feed import --format spamhaus-drop --source spamhaus-drop --action drop "$work/drop.txt" --force
sleep 0.5
try "ping 203.0.113.66 (in the feed's /29)" in_ns sub ping -c 2 -W 1 203.0.113.66
try "ping 203.0.113.77 (outside it)     " in_ns sub ping -c 2 -W 1 203.0.113.77

say "three tiers: the centre publishes a C&C address; the ISP follows, its edge drops it"
centre() { c2wall --coordinator https://127.0.0.1:50061 "$@"; }
try "ping 203.0.113.77 (benign, not yet listed)" in_ns sub ping -c 2 -W 1 203.0.113.77
set -x
centre publish 203.0.113.77 --category mirai --reference JPC-DEMO-7 --reason "C&C seen by the centre"
{ set +x; } 2>/dev/null
sleep 0.5
try "ping 203.0.113.77 (listed by the centre)" in_ns sub ping -c 2 -W 1 203.0.113.77
c2wall explain 203.0.113.77
say "the ISP protects it (its own customer's service): the centre's entry is vetoed here"
c2wall protect add 203.0.113.77/32 --why "a customer's service" --reason "ISP decision"
sleep 1.5
try "ping 203.0.113.77 (protected at the ISP)" in_ns sub ping -c 2 -W 1 203.0.113.77
c2wall explain 203.0.113.77
c2wall feed list
say "the centre sees the ISP among its subscribers"
centre agents

say "c2wall history / agents / explain / audit"
c2wall history
c2wall audit --limit 6
c2wall agents
c2wall explain 2001:db8:b::66

say "sightings: which subscriber talked to which C&C entry (pseudonymised at the edge)"
sleep 1.5
c2wall sightings
say "c2wall-agent top (in the edge namespace)"
in_ns edge "$agent_bin" top --metrics-addr 127.0.0.1:9469 | head -12

say "c2wall-agent status"
"$agent_bin" status --pin-dir "$pins" --state-dir "$work/state"
say "metrics (curl http://127.0.0.1:9469/metrics in the edge namespace, non-zero counters)"
in_ns edge curl -s http://127.0.0.1:9469/metrics | grep -E '^c2wall_(packets_total|entries|xdp_attached|mode|sync_applied_version|sync_coordinator_version|sampled_events_total)' | grep -v ' 0$'
say "coordinator metrics (curl http://127.0.0.1:9465/metrics in the edge namespace)"
in_ns edge curl -s http://127.0.0.1:9465/metrics | grep -E '^c2wall_(coordinator_version|coordinator_entries|connected_agents|publishes_total|rpc_refused_total)' | grep -v ' 0$'

if [ "$keep" = "--keep" ]; then
  say "running; try: nsenter --net=/run/netns/$id-edge $cli_bin --tls-ca $pki/ca.crt --tls-cert $pki/demo.crt --tls-key $pki/demo.key list; press Enter to stop"
  read -r _
fi
say "cleaning up (agent and coordinator stopped, program detached, namespaces removed)"
