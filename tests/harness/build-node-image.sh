#!/usr/bin/env bash
# Build (or reuse) the base image for the Molecule cluster nodes: a Debian bookworm
# rootfs made by debootstrap, with systemd as PID 1 and sshd, imported with `docker import`
# (no registry is reachable, so nothing can be pulled). Ansible reaches the nodes as a site
# reaches its hosts: SSH as `deploy`, a user whose sudo asks for its password; `nosudo` has no
# sudo at all (the preflight tests). create.yml installs the run's key and sets the password.
#
# The tag is a hash of this script and the apt mirror(s) it uses, so an unchanged
# script reuses the existing image in seconds. Progress goes to stderr; the only
# line on stdout is the image ref (shopstream/node:<hash>), for callers to capture.
#
# Usage: tests/harness/build-node-image.sh        (as root: debootstrap needs it)
set -euo pipefail

SUITE=bookworm
PACKAGES=python3,systemd,systemd-sysv,dbus,iproute2,ca-certificates,procps,sudo,gnupg,openssh-server
REPO=shopstream/node

log() { printf '%s\n' "$*" >&2; }
die() { log "build-node-image: $*"; exit 1; }

for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH (apt-get install -y $tool)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap creates device nodes and chroots)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine ('docker info' fails)"

# The mirror comes from the host's deb822 apt sources, never hard-coded: the main
# archive is the first URIs: line not ending in -security; the security archive, if
# the host has one, is the URIs: line ending in -security.
uris=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
MIRROR=$(grep -v -- '-security/*$' <<<"$uris" | head -n1 || true)
SECURITY=$(grep -- '-security/*$' <<<"$uris" | head -n1 || true)
[ -n "$MIRROR" ] || die "no 'URIs:' line in /etc/apt/sources.list.d/*.sources to take the mirror from"

hash=$( { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$MIRROR" "$SECURITY"; } | sha256sum | cut -c1-12)
REF="$REPO:$hash"

# One build at a time per host (two scenarios starting together would race otherwise).
exec 9>/tmp/shopstream-node-image.lock
flock 9

size() { docker image inspect -f '{{.Size}}' "$REF" | numfmt --to=iec --suffix=B; }

if docker image inspect "$REF" >/dev/null 2>&1; then
  log "reused $REF ($(size))"
  echo "$REF"
  exit 0
fi

start=$SECONDS
rootfs=$(mktemp -d /var/tmp/shopstream-node.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

log "debootstrap $SUITE from $MIRROR into $rootfs ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >&2

# apt inside the node uses the same mirror(s) as the host.
{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
} >"$rootfs/etc/apt/sources.list"

# Each container must get its own machine-id: with /etc/machine-id absent, systemd
# generates one at boot (machine-id(5)). It would copy dbus's instead, the same in
# every node, if /var/lib/dbus/machine-id (a real file after debootstrap) were left.
rm -f "$rootfs/etc/machine-id"
ln -sf /etc/machine-id "$rootfs/var/lib/dbus/machine-id"
# Units masked, as they only fail or stall in a container (the only ones found so):
# - no machine-id means "first boot", and systemd-firstboot fails for want of a tty;
# - Docker configures eth0, so systemd-networkd manages no link, and its wait-online
#   unit, pulled in by docker.service's Wants=network-online.target, times out after
#   2 minutes (the node "degraded", and docker.io's install 2 minutes slower).
# (getty units skip themselves in a container by their own conditions; minbase brings
# no udev.)
chroot "$rootfs" systemctl mask --quiet systemd-firstboot.service \
  systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service

# `--security-opt systempaths=unconfined` is not a daemon option: the docker CLI turns
# it into empty MaskedPaths/ReadonlyPaths, which community.docker.docker_container
# cannot set (the daemon answers 'invalid --security-opt 2'; docker/compose#9505).
# What the node's dockerd needs of it is a writable /proc/sys (per-netns sysctls), so
# this unit remounts it read-write (needs CAP_SYS_ADMIN). It runs after systemd-sysctl,
# which thus skips (ConditionPathIsReadWrite=/proc/sys/net/): nodes share the host kernel.
cat >"$rootfs/etc/systemd/system/shopstream-proc-sys-rw.service" <<'EOF'
[Unit]
Description=Remount /proc/sys read-write (what systempaths=unconfined would do)
DefaultDependencies=no
ConditionVirtualization=container
After=systemd-sysctl.service
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/mount -o remount,bind,rw /proc/sys

[Install]
WantedBy=sysinit.target
EOF
chroot "$rootfs" systemctl enable --quiet shopstream-proc-sys-rw.service

# SSH: keys only, no root login. Every node makes its own host keys at first boot (debootstrap's
# would be the same in every node); create.yml reads them into the run's known_hosts.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat >"$rootfs/etc/ssh/sshd_config.d/shopstream.conf" <<'EOF'
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
cat >"$rootfs/etc/systemd/system/shopstream-ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Make this node's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
EOF
chroot "$rootfs" systemctl enable --quiet shopstream-ssh-hostkeys.service ssh.service
# pam_loginuid cannot always write /proc/self/loginuid in a container; a login must not fail on it.
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' "$rootfs/etc/pam.d/sshd"
chroot "$rootfs" useradd --create-home --shell /bin/bash --groups sudo deploy
chroot "$rootfs" useradd --create-home --shell /bin/bash nosudo

rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# container=docker tells systemd it runs in a container. (`docker import --change`
# rejects STOPSIGNAL; the create playbook sets the stop signal on the container.)
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  - "$REF" >/dev/null

log "built $REF in $((SECONDS - start)) s ($(size))"
echo "$REF"
