#!/usr/bin/env bash
# Builds the Debian packages into target/debian/:
#   c2wall-agent_VERSION_ARCH.deb        the edge agent, its unit, /etc/c2wall/agent.toml
#   c2wall-coordinator_VERSION_ARCH.deb  the coordinator, its unit and system user
#   c2wall_VERSION_ARCH.deb              the command-line client
# Usage: scripts/package.sh [--version V] [--bin-dir DIR] [--out DIR] [--compress C]
#   --version   package version [default: the workspace version]
#   --bin-dir   package binaries already built there (e.g. target/debug)
#               instead of building release binaries
#   --out       where the .deb files go [default: target/debian]
#   --compress  xz (default), gzip or none (the tests' packages: faster)
# Needs dpkg-deb (Debian's dpkg); nothing else beyond the build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
bin_dir=""
out=target/debian
compress=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --compress) compress="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
  echo "package.sh: version '$version' is not a Debian version (digits first, then [A-Za-z0-9.+~-])" >&2
  exit 2
fi
case "$compress" in xz|gzip|none) ;; *) echo "package.sh: --compress $compress: xz, gzip or none" >&2; exit 2 ;; esac
if [ -z "$bin_dir" ]; then
  cargo build --release --bin c2wall-agent --bin c2wall-coordinator --bin c2wall
  bin_dir=target/release
fi
for b in c2wall-agent c2wall-coordinator c2wall; do
  [ -x "$bin_dir/$b" ] || { echo "package.sh: $bin_dir/$b is missing (build it, or drop --bin-dir)" >&2; exit 2; }
done
arch=$(dpkg --print-architecture)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Packaged units run the binaries from /usr/bin; the coordinator runs as the
# package's system user with its own state directory (so an agent on the
# same host keeps /var/lib/c2wall to itself).
unit() {
  sed -e 's|/usr/local/bin/|/usr/bin/|g' \
      -e 's|^DynamicUser=yes$|User=c2wall\nGroup=c2wall|' \
      -e "s|^StateDirectory=c2wall\$|StateDirectory=$2|" \
      "deploy/$1"
}

build() {
  local pkg=$1 root="$work/$1"
  mkdir -p "$root/DEBIAN"
  # As dh_strip does: no symbols or debug info in the installed binaries.
  find "$root/usr/bin" -type f -exec strip --strip-unneeded {} +
  for f in postinst prerm postrm; do
    if [ -f "packaging/deb/$pkg/$f" ]; then
      install -m 0755 "packaging/deb/$pkg/$f" "$root/DEBIAN/$f"
    fi
  done
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
  fi
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "packaging/deb/$pkg/control" > "$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
}

r="$work/c2wall-agent"
install -D -m 0755 "$bin_dir/c2wall-agent" "$r/usr/bin/c2wall-agent"
install -d "$r/lib/systemd/system" "$r/etc/c2wall" "$r/usr/share/doc/c2wall-agent"
unit c2wall-agent.service c2wall > "$r/lib/systemd/system/c2wall-agent.service"
install -m 0644 deploy/agent.toml "$r/etc/c2wall/agent.toml"
install -m 0644 deploy/blocklist.example.txt deploy/allowlist.example.txt "$r/usr/share/doc/c2wall-agent/"
build c2wall-agent

r="$work/c2wall-coordinator"
install -D -m 0755 "$bin_dir/c2wall-coordinator" "$r/usr/bin/c2wall-coordinator"
install -d "$r/lib/systemd/system" "$r/etc/c2wall" "$r/usr/share/doc/c2wall-coordinator"
unit c2wall-coordinator.service c2wall-coordinator > "$r/lib/systemd/system/c2wall-coordinator.service"
sed 's|/var/lib/c2wall/coordinator.db|/var/lib/c2wall-coordinator/coordinator.db|' deploy/coordinator.toml \
  > "$r/etc/c2wall/coordinator.toml"
chmod 0644 "$r/etc/c2wall/coordinator.toml"
install -m 0644 deploy/coordinator-replica.toml deploy/coordinator-isp.toml deploy/postgres-setup.sql \
  "$r/usr/share/doc/c2wall-coordinator/"
build c2wall-coordinator

r="$work/c2wall"
install -D -m 0755 "$bin_dir/c2wall" "$r/usr/bin/c2wall"
build c2wall
