#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: engine_info
short_description: Read, in one call, what the engine role would change on a host
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Read-only. Reports which of the given packages are installed and in which version, whether
    they are held, the daemon's configuration file (content, owner, group, mode) and its
    directory, and whether the daemon runs (under systemd, or directly from a pid file).
  - One call instead of a module run per question, so that an unchanged host costs one round
    trip. The engine role runs C(ansible.builtin.apt), C(ansible.builtin.copy) and the service
    tasks only where this module reports a difference.
  - Packages are read from the dpkg database (Debian and its derivatives). Where C(dpkg-query)
    is not found, no package is reported and every package counts as missing.
requirements:
  - Python 3 on the host (standard library only).
extends_documentation_fragment:
  - shopstream.swarm.attributes
options:
  packages:
    description:
      - The packages wanted, each a name or C(name=version) (the form C(ansible.builtin.apt)
        takes, a version pattern such as C(20.10.*) included). A package is missing when it is
        not installed, or installed in a version the one given does not match.
    type: list
    elements: str
    default: []
  config_path:
    description: The daemon's configuration file.
    type: path
    default: /etc/docker/daemon.json
  service:
    description: The systemd unit whose state is reported when systemd runs the host.
    type: str
    default: docker
  pidfile:
    description:
      - The pid file of a daemon run without an init system. When given,
        C(running) in RV(direct) says whether the process it names runs and is C(dockerd).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - This action does not modify state.
seealso:
  - module: ansible.builtin.package_facts
  - module: shopstream.swarm.swarm_host_info
"""

EXAMPLES = r"""
- name: Read the engine's packages, configuration and service
  shopstream.swarm.engine_info:
    packages: [docker.io=20.10.24+dfsg1-1+deb12u1, python3-docker]
    pidfile: /var/run/docker.pid
  register: engine

- name: Install only what is missing
  ansible.builtin.apt:
    name: "{{ engine.missing }}"
  when: engine.missing | length > 0
"""

RETURN = r"""
packages:
  description: Per package name, C(installed), C(version) (or null) and C(held).
  returned: always
  type: dict
  sample: {docker.io: {installed: true, version: 20.10.24+dfsg1-1+deb12u1, held: true}}
missing:
  description: The entries of O(packages), as given, that are not installed as asked.
  returned: always
  type: list
  elements: str
  sample: [python3-docker]
config:
  description: The configuration file and its directory. C(content) is null when the file is absent.
  returned: always
  type: dict
  sample:
    path: /etc/docker/daemon.json
    exists: true
    content: "{}\n"
    owner: root
    group: root
    mode: "0644"
    dir: {path: /etc/docker, exists: true, owner: root, group: root, mode: "0755"}
service:
  description:
    - C(manager) is V(systemd) when systemd runs the host, else V(none); C(enabled) and C(active)
      are the unit's state under systemd, null otherwise.
  returned: always
  type: dict
  sample: {manager: systemd, enabled: true, active: true}
direct:
  description: With O(pidfile), C(pid) and whether it C(running) as C(dockerd).
  returned: when O(pidfile) is given
  type: dict
  sample: {pidfile: /var/run/docker.pid, pid: 512, running: true}
"""

import fnmatch
import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def wanted(spec):
    """``name`` or ``name=version`` -> (name, version or None)."""
    name, _sep, version = spec.partition("=")
    return name, version or None


def read_packages(module, specs):
    """Name -> {installed, version, held}, from the dpkg database; {} without dpkg-query."""
    names = [wanted(spec)[0] for spec in specs]
    dpkg_query = module.get_bin_path("dpkg-query")
    if not names or not dpkg_query:
        return {}
    fmt = "${Package}\t${Version}\t${db:Status-Want}\t${db:Status-Status}\n"
    # rc 1 when a name matches no package: those are reported as not installed.
    rc, out, err = module.run_command([dpkg_query, "-W", "-f", fmt] + names)
    if rc not in (0, 1):
        module.fail_json(msg=f"dpkg-query failed (rc {rc}): {err.strip()}")
    found = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 4:
            name, version, want, status = fields
            installed = status == "installed"
            found[name] = dict(installed=installed, version=version if installed else None, held=want == "hold")
    return {n: found.get(n, dict(installed=False, version=None, held=False)) for n in names}


def missing(specs, packages):
    out = []
    for spec in specs:
        name, version = wanted(spec)
        got = packages.get(name, {})
        # apt takes a version pattern too (docker.io=20.10.*): fnmatch, as ansible.builtin.apt matches it
        if not got.get("installed") or (version and not fnmatch.fnmatchcase(got.get("version") or "", version)):
            out.append(spec)
    return out


def describe(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return dict(path=path, exists=False, owner=None, group=None, mode=None)

    def name(lookup, ident):
        try:
            return lookup(ident)[0]
        except KeyError:
            return str(ident)

    return dict(
        path=path,
        exists=True,
        owner=name(pwd.getpwuid, st.st_uid),
        group=name(grp.getgrgid, st.st_gid),
        mode=f"{stat.S_IMODE(st.st_mode):04o}",
    )


def read_config(path):
    config = describe(path)
    config["content"] = None
    if config["exists"]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            config["content"] = handle.read()
    config["dir"] = describe(os.path.dirname(path) or "/")
    return config


def read_service(module, unit):
    systemctl = module.get_bin_path("systemctl")
    if not (os.path.isdir("/run/systemd/system") and systemctl):
        return dict(manager="none", enabled=None, active=None)
    enabled = module.run_command([systemctl, "is-enabled", unit])[1].strip()
    active = module.run_command([systemctl, "is-active", unit])[1].strip()
    return dict(manager="systemd", enabled=enabled == "enabled", active=active == "active")


def read_direct(pidfile):
    pid = None
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            running = handle.read().strip() == "dockerd"
    except (OSError, ValueError):
        running = False
    return dict(pidfile=pidfile, pid=pid, running=running)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            config_path=dict(type="path", default="/etc/docker/daemon.json"),
            service=dict(type="str", default="docker"),
            pidfile=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    packages = read_packages(module, p["packages"])
    result = dict(
        changed=False,
        packages=packages,
        missing=missing(p["packages"], packages),
        config=read_config(p["config_path"]),
        service=read_service(module, p["service"]),
    )
    if p["pidfile"]:
        result["direct"] = read_direct(p["pidfile"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
