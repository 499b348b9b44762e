#!/bin/bash
# Make the kit's base rootfs: Debian minbase by debootstrap, trimmed for containers.
# Usage: rootfs.sh DIR MIRROR SUITE   (run as root; the kit's builder calls it and then
# imports DIR with `docker import`). MIRROR comes from the build host's apt sources.
set -euo pipefail
dir=$1 mirror=$2 suite=$3
here=$(dirname "$(readlink -f "$0")")
include=$(grep -v -e '^#' -e '^[[:space:]]*$' "$here/packages" | paste -sd, -)

debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dir" "$mirror"

# apt inside images uses the same mirror as the build host.
cat >"$dir/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
SOURCES
# Lean installs: no recommends, no docs/man/locales, no apt caches left behind.
cat >"$dir/etc/apt/apt.conf.d/90kit" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dpkg::Options { "--force-confdef"; "--force-confold"; };
# As Debian's official container images (docker-clean): no .debs or package caches left in layers.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
cat >"$dir/etc/dpkg/dpkg.cfg.d/90kit-nodoc" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
# Package scripts must not start daemons during a build (no init system in a container).
printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
chmod 0755 "$dir/usr/sbin/policy-rc.d"

chroot "$dir" apt-get clean
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log \
  "$dir"/var/log/apt/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/* \
  "$dir"/etc/machine-id "$dir"/etc/hostname
: >"$dir/etc/resolv.conf"
