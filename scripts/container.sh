#!/usr/bin/env bash
# Builds a container image of a c2wall binary with podman, from scratch: the
# binary (stripped) and the shared libraries `ldd` lists, nothing pulled
# from a registry.
# Usage: scripts/container.sh [--binary c2wall-agent|c2wall-coordinator|c2wall-bgp]
#                             [--bin-dir DIR] [--tag TAG] [--seccomp FILE]
#   --binary   what the image runs [default: c2wall-agent]
#   --bin-dir  use binaries already built there (e.g. target/debug)
#              instead of building a release binary
#   --tag      image name [default: localhost/BINARY:VERSION]
#   --seccomp  also write the agent's seccomp profile to FILE [default:
#              target/container/seccomp-agent.json]: podman's default
#              profile, but bpf(2) allowed with CAP_BPF and perf_event_open(2)
#              with CAP_PERFMON instead of only with CAP_SYS_ADMIN (podman 4.3,
#              Debian 12), so the agent needs no CAP_SYS_ADMIN
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

binary=c2wall-agent
bin_dir=""
tag=""
seccomp=target/container/seccomp-agent.json
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --seccomp) seccomp="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$binary" in
  c2wall-agent|c2wall-coordinator|c2wall-bgp) ;;
  *) echo "container.sh: --binary $binary: c2wall-agent, c2wall-coordinator or c2wall-bgp" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${tag:-localhost/$binary:$version}
if [ -z "$bin_dir" ]; then
  cargo build --release --bin "$binary"
  bin_dir=target/release
fi
[ -x "$bin_dir/$binary" ] || { echo "container.sh: $bin_dir/$binary is missing" >&2; exit 2; }
command -v podman >/dev/null || { echo "container.sh: podman is not installed (apt-get install podman)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
install -D -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
strip --strip-unneeded "$root/usr/bin/$binary"
ln -s "$binary" "$root/usr/bin/entrypoint"
for lib in $(ldd "$bin_dir/$binary" | grep -oE '/[^ ]+'); do
  cp --parents -L "$lib" "$root/"
done
# The agent mounts bpffs itself if the host has not (mount(8) is not in the
# image: mount it on the host, or in the pod's init step).
install -d "$root/var/lib/c2wall" "$root/etc/c2wall" "$root/tmp"
cp packaging/container/Containerfile "$work/"
podman build -q -t "$tag" "$work" >/dev/null
echo "$tag"

if [ "$binary" = c2wall-agent ]; then
  default=/usr/share/containers/seccomp.json
  [ -f "$default" ] || { echo "container.sh: $default (podman's default seccomp profile) is missing" >&2; exit 2; }
  mkdir -p "$(dirname "$seccomp")"
  python3 - "$default" "$seccomp" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
grants = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
for rule in profile["syscalls"]:
    # The rule refusing these without CAP_SYS_ADMIN: drop them from it; the
    # profile's default action still refuses them to other containers.
    if rule["action"] == "SCMP_ACT_ERRNO" and "CAP_SYS_ADMIN" in rule.get("excludes", {}).get("caps", []):
        rule["names"] = [n for n in rule["names"] if n not in grants]
for name, cap in grants.items():
    profile["syscalls"].append({"names": [name], "action": "SCMP_ACT_ALLOW", "args": [],
                                "includes": {"caps": [cap]}, "excludes": {}})
json.dump(profile, open(sys.argv[2], "w"), indent=1)
PY
  echo "$seccomp"
fi
