#!/usr/bin/env bash
# Installs everything c2wall's build, demo and tests need, idempotently: each
# step checks first and skips what is already present. Safe to run on every
# invocation of the demo or test command.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[setup] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs Debian packages, mounts bpffs)"; exit 1
  fi
}

# Debian packages: the eBPF compiler route (see README "Build route": rustc 1.96
# with LLVM 22 and a prebuilt `core` for bpfel-unknown-none, clippy and rustfmt
# for it, LLVM 22 for bpf-linker) and the tools the demo and tests drive
# (ip, nsenter, ping, curl; prometheus and promtool for the metrics test;
# PostgreSQL, whose servers the replica tests start in temporary directories;
# BIRD 2, which c2wall-bgp drives, and BIRD 2 and GoBGP as the BGP peers the
# exporter tests start in namespaces; xdp-tools and libxdp for the XDP
# neighbour tests: xdp-loader, and libxdp's dispatcher object that
# `--attach multi` loads; podman and runc for the container test, kubectl
# (kubernetes-client) to render the Kubernetes manifests; qemu, busybox,
# cpio and bpftool for the dispatcher test in a VM whose Debian kernel
# allows freplace, fetched by fetch_vm_kernel below); Unbound and BIND 9, the
# resolvers the RPZ tests start as secondaries of the coordinator, and dig.
debs=(rustc-web cargo-web rust-web-clippy rustfmt-web libstd-rust-web-dev-bpf llvm-22-dev iproute2 iputils-ping procps curl util-linux ca-certificates prometheus postgresql bird2 gobgpd xdp-tools libxdp1 podman runc qemu-system-x86 busybox-static cpio bpftool unbound bind9 bind9-dnsutils)

install_debs() {
  local missing=()
  # kubectl renders the Kubernetes manifests: Debian's kubernetes-client
  # unless a kubectl (e.g. Kubernetes' own package) is already there.
  command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
  for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Debian's cloud kernel, unpacked under /var/cache/c2wall-vm/KERNEL: the
# dispatcher test boots it in qemu (this project's CI kernels refuse freplace
# programs, which libxdp's dispatcher needs).
fetch_vm_kernel() {
  [ "$(dpkg --print-architecture)" = amd64 ] || return 0
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$pkg" ] || { log "no linux-image-cloud-amd64 in the package lists; the VM test will fail"; return 0; }
  local dir=/var/cache/c2wall-vm/$pkg
  if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
    log "fetching $pkg for the dispatcher VM test"
    local tmp
    tmp=$(mktemp -d)
    chmod 0755 "$tmp" && chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
    mkdir -p "$dir"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir"
    rm -rf "$tmp"
  fi
  ln -sfn "$dir" /var/cache/c2wall-vm/current
}

install_bpf_linker() {
  if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q '0\.13\.0'; then
    return
  fi
  log "building bpf-linker 0.13.0 against LLVM 22 (about 2 minutes)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version 0.13.0 --locked \
    --no-default-features --features llvm-22
}

mount_bpffs() {
  if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
    log "mounting bpffs on /sys/fs/bpf"
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
  fi
}

need_root
install_debs
fetch_vm_kernel
install_bpf_linker
mount_bpffs
log "ready"
