#!/bin/busybox sh
# /init of the dispatcher VM (tests/tests/dispatcher_vm.rs): a Debian kernel
# that allows freplace, so libxdp builds a real dispatcher. Two namespaces on
# a veth pair; XDP on vb, the side that receives from "a":
#   a [va 10.0.0.1] -- [vb 10.0.0.2 benign, 10.0.0.3 listed] b
# Every finding is printed as "C2VM key value" on the console for the test.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# busybox's shell prefers its own applets: the real tools by path.
IP=/usr/sbin/ip PING=/usr/bin/ping LOADER=/usr/sbin/xdp-loader BPFTOOL=/usr/sbin/bpftool
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t bpf bpf /sys/fs/bpf
mkdir -p /run/netns
say() { echo "C2VM $*"; }
finish() { say done; sync; poweroff -f; }
trap finish EXIT
for m in /modules/*.ko; do insmod "$m"; done
say kernel "$(uname -r)"

$IP netns add a
$IP netns add b
$IP link add va netns a type veth peer name vb netns b
A="nsenter --net=/run/netns/a"
B="nsenter --net=/run/netns/b"
$A $IP link set lo up; $B $IP link set lo up
$A $IP link set va up; $B $IP link set vb up
$A $IP addr add 10.0.0.1/24 dev va
$B $IP addr add 10.0.0.2/24 dev vb
$B $IP addr add 10.0.0.3/24 dev vb
echo "10.0.0.3" > /tmp/list.txt
OTHER=/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o

received() { # received(dst, count, interval)
  $A $PING -q -c "$2" -i "$3" -W 1 "$1" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'
}
agent() {
  $B /usr/bin/c2wall-agent -i vb -b /tmp/list.txt --pin-dir /sys/fs/bpf/c2 \
    --state-dir /tmp/state --metrics-addr 127.0.0.1:9469 "$@" > /tmp/agent.log 2>&1 &
  AGENT=$!
  for i in $(seq 1 300); do
    if $B wget -q -O - http://127.0.0.1:9469/readyz 2>/dev/null | grep -q '^ready'; then
      say ready "$i"; return 0
    fi
    sleep 0.2
  done
  say agent_not_ready; cat /tmp/agent.log; return 1
}
stats() { # the other program's counters (xdp_stats_map), as JSON on one line
  say stats "$($BPFTOOL -j map dump name xdp_stats_map 2>/dev/null | tr -d '\n')"
}

metric() { $B wget -q -O - http://127.0.0.1:9469/metrics | grep "^c2wall_xdp_attached{" | tr '\n' '|'; }

# Before any other program: tc on a kernel without tcx (clsact), then
# exclusive XDP, then multi, under one flow (the change between the two XDP
# forms goes through the tc program on clsact).
agent --attach-hook tc || exit 1
say tc_metric "$(metric)"
say tc_listed "$(received 10.0.0.3 5 0.2)"
say tc_benign "$(received 10.0.0.2 5 0.2)"
$A $PING -q -c 800 -i 0.01 -W 1 10.0.0.3 > /tmp/flow_listed 2>&1 &
FL=$!
$A $PING -q -c 800 -i 0.01 -W 1 10.0.0.2 > /tmp/flow_benign 2>&1 &
FB=$!
sleep 0.5
kill "$AGENT"; wait "$AGENT" 2>/dev/null
agent --attach exclusive || exit 1
say exclusive_metric "$(metric)"
kill "$AGENT"; wait "$AGENT" 2>/dev/null
agent --attach multi || exit 1
say multi_status "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
say multi_filters "$($B /usr/sbin/tc filter show dev vb ingress 2>/dev/null | grep -c bpf)"
wait "$FL"; wait "$FB"
say switch_listed "$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/flow_listed)"
say switch_benign "$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/flow_benign)"
kill "$AGENT"; wait "$AGENT" 2>/dev/null
$B /usr/bin/c2wall-agent detach --pin-dir /sys/fs/bpf/c2 > /tmp/detach.log 2>&1 || { say detach0_failed; cat /tmp/detach.log; }
say detached0_status "$($B $LOADER status vb | tr -s ' ' | tr '\n' '|')"

$B $LOADER load -m skb vb "$OTHER" > /tmp/loader.log 2>&1 || { say loader_failed; cat /tmp/loader.log; }
say status_other_only "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
agent || exit 1
say status_both "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
stats
say listed "$(received 10.0.0.3 5 0.2)"
say benign "$(received 10.0.0.2 5 0.2)"
stats

# A flow across kill -9, a restart, and the other program's unload.
$A $PING -q -c 800 -i 0.01 -W 1 10.0.0.3 > /tmp/flow_listed 2>&1 &
FL=$!
$A $PING -q -c 800 -i 0.01 -W 1 10.0.0.2 > /tmp/flow_benign 2>&1 &
FB=$!
sleep 1
kill -9 "$AGENT"; wait "$AGENT" 2>/dev/null
say status_after_kill "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
agent || exit 1
say status_after_restart "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
ID=$($B $LOADER status vb | awk '/xdpfilt_alw_all/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/ && $(i+1) ~ /^[0-9a-f]+$/ && length($(i+1)) == 16) print $i}' | head -1)
$B $LOADER unload vb -i "$ID" > /tmp/unload.log 2>&1 || { say unload_failed; cat /tmp/unload.log; }
say status_other_unloaded "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
wait "$FL"; wait "$FB"
say flow_listed "$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/flow_listed)"
say flow_benign "$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/flow_benign)"

# The other program joins again; c2wall leaves; the other keeps running.
$B $LOADER load -m skb vb "$OTHER" > /tmp/loader.log 2>&1 || { say loader2_failed; cat /tmp/loader.log; }
say status_rejoined "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>' | tr -s ' ' | tr '\n' '|')"
kill "$AGENT"; wait "$AGENT" 2>/dev/null
$B /usr/bin/c2wall-agent detach --pin-dir /sys/fs/bpf/c2 > /tmp/detach.log 2>&1 || { say detach_failed; cat /tmp/detach.log; }
say status_detached "$($B $LOADER status vb | grep -E 'xdp_dispatcher|=>|xdpfilt' | tr -s ' ' | tr '\n' '|')"
stats
say listed_detached "$(received 10.0.0.3 5 0.2)"
stats
