#!/usr/bin/env bash
# Builds the dispatcher VM's initramfs: busybox, the agent, xdp-loader,
# bpftool, ip, tc and ping with the libraries they link, libxdp's objects, the
# kernel modules the test needs, and tests/vm/init.sh as /init.
# Usage: tests/vm/initramfs.sh KERNEL_TREE AGENT_BINARY OUT.cpio.gz
set -euo pipefail
kernel=$1 agent=$2 out=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp,run,modules,usr/bin,usr/sbin}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$agent" "$root/usr/bin/c2wall-agent"
strip --strip-unneeded "$root/usr/bin/c2wall-agent"
for b in /usr/sbin/xdp-loader /usr/sbin/bpftool /usr/sbin/ip /usr/sbin/tc /usr/bin/ping; do
  cp "$b" "$root$b"
done
for b in "$agent" /usr/sbin/xdp-loader /usr/sbin/bpftool /usr/sbin/ip /usr/sbin/tc /usr/bin/ping; do
  for lib in $(ldd "$b" | grep -oE '/[^ ]+'); do cp --parents -L "$lib" "$root/"; done
done
cp --parents -r /usr/lib/x86_64-linux-gnu/bpf "$root/"
for m in drivers/net/veth.ko net/sched/sch_ingress.ko net/sched/cls_bpf.ko; do
  cp "$(ls -d "$kernel"/lib/modules/*/kernel)/$m" "$root/modules/"
done
install -m 0755 "$here/init.sh" "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null) | gzip -1 > "$out"
