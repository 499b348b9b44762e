# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only probes of a Linux host for Docker Swarm, standard library only.

The parse_*, evaluate_*, options_*, find_* and summarise_* functions are pure (text
or decoded JSON in, data out). The read_* functions are the thin layer that touches
/proc and /lib/modules.
"""

import contextlib
import gzip
import ipaddress
import os
import re

# Kernel features Docker Swarm relies on. Every `all_of` option is required and, when
# `any_of` is not empty, at least one of those as well. Each option maps to the kernel
# module providing it when it is built as a module (=m).
KERNEL_FEATURES = {
    # Swarm's VIP endpoint mode and the ingress routing mesh load-balance with IPVS.
    "ipvs": {"all_of": {"CONFIG_IP_VS": "ip_vs"}, "any_of": {}},
    # Overlay networks carry container traffic in VXLAN tunnels.
    "vxlan": {"all_of": {"CONFIG_VXLAN": "vxlan"}, "any_of": {}},
    # Encrypted overlays: IPsec ESP with AES-GCM keyed over xfrm netlink, plus an
    # iptables match (bpf, or u32 on older engines) dropping unencrypted VXLAN.
    "overlay_encryption": {
        "all_of": {
            "CONFIG_XFRM_USER": "xfrm_user",
            "CONFIG_INET_ESP": "esp4",
            "CONFIG_CRYPTO_GCM": "gcm",
        },
        "any_of": {
            "CONFIG_NETFILTER_XT_MATCH_BPF": "xt_bpf",
            "CONFIG_NETFILTER_XT_MATCH_U32": "xt_u32",
        },
    },
}

TCP_LISTEN = "0A"

_CONFIG_SET = re.compile(r"^(CONFIG_\w+)=(.*)$")
_CONFIG_NOT_SET = re.compile(r"^# (CONFIG_\w+) is not set$")
_MODULE_FILE = re.compile(r"^(.+)\.ko(?:\.(?:xz|zst|gz))?$")
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")
# Network namespaces Docker makes for overlays under <exec-root>/netns: one per overlay
# ('1-<network id>'), its load balancer ('lb_<network id>') and the ingress sandbox.
_OVERLAY_SANDBOX = re.compile(r"^(?:\d+-[0-9a-z]+|lb_[0-9a-z]+|ingress_sbox)$")
# libnetwork's name of an overlay's VXLAN device: vx-<VNI, 6 hex digits>-<the network ID's first 5>.
_OVERLAY_VXLAN = re.compile(r"^vx-[0-9a-f]{6}-[0-9a-z]{1,5}$")


def parse_kernel_config(text):
    """Parse a kernel config into {CONFIG_X: value}, None for '# CONFIG_X is not set'."""
    options = {}
    for line in text.splitlines():
        line = line.strip()
        match = _CONFIG_SET.match(line)
        if match:
            options[match.group(1)] = match.group(2).strip('"')
            continue
        match = _CONFIG_NOT_SET.match(line)
        if match:
            options[match.group(1)] = None
    return options


def parse_module_list(text):
    """Module names listed in /proc/modules or modules.builtin (paths to .ko files).

    Names are normalised the way the kernel does, '-' becoming '_'.
    """
    names = set()
    for line in text.splitlines():
        fields = line.split()
        if fields:
            base = os.path.basename(fields[0])
            match = _MODULE_FILE.match(base)
            names.add((match.group(1) if match else base).replace("-", "_"))
    return names


def _feature_options(spec):
    options = dict(spec["all_of"])
    options.update(spec["any_of"])
    return options


def options_from_modules(builtin_modules, module_file_exists):
    """Stand-in for a kernel config: builtin modules count as 'y', module files as 'm'."""
    options = {}
    for spec in KERNEL_FEATURES.values():
        for option, module in _feature_options(spec).items():
            if module in builtin_modules:
                options[option] = "y"
            elif module_file_exists(module):
                options[option] = "m"
    return options


def evaluate_features(options, loaded_modules, module_file_exists):
    """Decide which of KERNEL_FEATURES the running kernel offers.

    options: {CONFIG_X: value} (parse_kernel_config or options_from_modules), or None
      when no listing of options could be read; then only a loaded module proves
      anything and everything else is unknown.
    loaded_modules: set of loaded module names, or None when /proc/modules is unreadable.
    module_file_exists: callable(module name) -> bool.

    'y' is present; 'm' is present when the module is loaded or its file exists;
    anything else is missing. Returns {feature: {available, missing, options}} where
    available is True, False or None (unknown).
    """
    loaded_modules = loaded_modules or set()
    features = {}
    for name, spec in KERNEL_FEATURES.items():
        values = {}
        present = {}
        for option, module in _feature_options(spec).items():
            loaded = module in loaded_modules
            if options is None:
                values[option] = "m" if loaded else None
                present[option] = True if loaded else None
            else:
                value = options.get(option)
                values[option] = value
                present[option] = value == "y" or (value == "m" and (loaded or module_file_exists(module)))

        required = [present[option] for option in spec["all_of"]]
        alternatives = [present[option] for option in spec["any_of"]]
        missing = [option for option in spec["all_of"] if present[option] is False]
        if alternatives and all(found is False for found in alternatives):
            missing.extend(spec["any_of"])
        if missing:
            available = False
        elif all(required) and (not alternatives or any(alternatives)):
            available = True
        else:
            available = None
        features[name] = {"available": available, "missing": missing, "options": values}
    return features


def parse_proc_net(text, listen_only):
    """(local port, socket inode) of each socket in /proc/net/{tcp,tcp6,udp,udp6}.

    listen_only keeps only sockets in TCP LISTEN state.
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or (listen_only and fields[3] != TCP_LISTEN):
            continue
        sockets.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[9])))
    return sockets


def find_port_holders(ports, sockets, processes):
    """Report who holds each wanted port.

    ports: [{port, proto}]; sockets: {proto: [(port, inode)]} from parse_proc_net;
    processes: iterable of (pid, name, fd link targets).
    Returns [{port, proto, in_use, holders: [{pid, name}], kernel_owned}].
    """
    wanted = [{inode for port, inode in sockets.get(item["proto"], ()) if port == item["port"]} for item in ports]
    all_inodes = set().union(*wanted)
    held = {}
    for pid, name, targets in processes:
        for target in targets:
            match = _SOCKET_LINK.match(target)
            if match and int(match.group(1)) in all_inodes:
                held.setdefault(int(match.group(1)), {})[pid] = name

    result = []
    for item, inodes in zip(ports, wanted):
        owners = {}
        for inode in inodes:
            owners.update(held.get(inode, {}))
        result.append(
            {
                "port": item["port"],
                "proto": item["proto"],
                "in_use": bool(inodes),
                "holders": [{"pid": pid, "name": owners[pid]} for pid in sorted(owners)],
                # A socket with inode 0 or held by no process was opened by the kernel
                # itself, like the VXLAN socket (4789/udp) of a swarm node.
                "kernel_owned": any(inode not in held for inode in inodes),
            }
        )
    return result


def find_overlay_sandboxes(names):
    """The overlay namespaces among the entries of Docker's netns directory, sorted.

    While they exist, their VXLAN devices keep the kernel's 4789/udp socket open, even
    after the engine that made them was killed; the engine takes them back when it starts.
    """
    return sorted(name for name in names if _OVERLAY_SANDBOX.match(name))


def parse_fib_trie(text):
    """Local IPv4 addresses: the /proc/net/fib_trie leaves tagged '/32 host LOCAL'."""
    addresses = []
    leaf = None
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["|--"]:
            leaf = fields[1]
        elif fields == ["/32", "host", "LOCAL"] and leaf not in addresses:
            addresses.append(leaf)
    return addresses


def parse_if_inet6(text):
    """IPv6 addresses of /proc/net/if_inet6 (first column, 32 hex digits)."""
    addresses = []
    for line in text.splitlines():
        fields = line.split()
        if fields:
            address = str(ipaddress.IPv6Address(int(fields[0], 16)))
            if address not in addresses:
                addresses.append(address)
    return addresses


def summarise_swarm(info):
    """The swarm part of a GET /info answer ({} when the daemon is unreachable)."""
    swarm = info.get("Swarm") or {}
    node_id = swarm.get("NodeID") or None
    managers = swarm.get("RemoteManagers") or []
    control_available = bool(swarm.get("ControlAvailable"))
    cluster = swarm.get("Cluster") or {}
    encryption = (cluster.get("Spec") or {}).get("EncryptionConfig") or {}
    return {
        "state": swarm.get("LocalNodeState") or None,
        "error": swarm.get("Error") or None,
        "node_id": node_id,
        "node_addr": swarm.get("NodeAddr") or None,
        # Only managers with control available get the cluster details.
        "cluster_id": cluster.get("ID") or None,
        "autolock": bool(encryption.get("AutoLockManagers")) if cluster.get("ID") else None,
        # RemoteManagers lists every manager, this node included when it is one.
        "is_manager": control_available or (node_id is not None and any(m.get("NodeID") == node_id for m in managers)),
        "control_available": control_available,
        "remote_managers": [m["Addr"] for m in managers if m.get("Addr")],
    }


def summarise_nodes(nodes):
    """The useful part of a GET /nodes answer, sorted by hostname."""
    result = []
    for node in nodes:
        spec = node.get("Spec") or {}
        status = node.get("Status") or {}
        manager = node.get("ManagerStatus") or {}
        addr = status.get("Addr")
        if manager.get("Addr"):
            # A manager's Status.Addr may read 0.0.0.0 or 127.0.0.1 (moby/moby#35437);
            # ManagerStatus.Addr ('ip:2377' or '[ip6]:2377') holds its advertise address.
            addr = manager["Addr"].rsplit(":", 1)[0].strip("[]")
        result.append(
            {
                "id": node.get("ID"),
                "hostname": (node.get("Description") or {}).get("Hostname"),
                "role": spec.get("Role"),
                "availability": spec.get("Availability"),
                "state": status.get("State"),
                "addr": addr,
                "leader": bool(manager.get("Leader")),
                "reachability": manager.get("Reachability"),
                "labels": spec.get("Labels") or {},
            }
        )
    return sorted(result, key=lambda node: (node["hostname"] or "", node["id"] or ""))


def read_text(path):
    """Content of a file, gunzipped when its name ends in .gz; None when unreadable."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (OSError, EOFError):
        return None


def module_file_checker(release, modules_root="/lib/modules"):
    """Return a callable telling whether a kernel module file exists for a name."""
    root = os.path.join(modules_root, release)
    if not os.path.isdir(root):
        # Containers share the host's kernel but usually have no /lib/modules: an =m
        # option cannot be checked there, so the kernel config is taken at its word.
        return lambda module: True
    names = set()
    for _dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            match = _MODULE_FILE.match(filename)
            if match:
                names.add(match.group(1).replace("-", "_"))
    return names.__contains__


def read_kernel(config_paths, release, proc="/proc", modules_root="/lib/modules"):
    """Evaluate KERNEL_FEATURES on this host; return (source used or None, features).

    The first readable of config_paths ('{release}' substituted) is used, else
    modules.builtin plus the module files, else the loaded modules alone.
    """
    modules_path = os.path.join(proc, "modules")
    modules_text = read_text(modules_path)
    loaded = parse_module_list(modules_text) if modules_text is not None else None
    module_file_exists = module_file_checker(release, modules_root)

    for path in config_paths:
        path = path.replace("{release}", release)
        text = read_text(path)
        if text is not None:
            options = parse_kernel_config(text)
            return path, evaluate_features(options, loaded, module_file_exists)

    builtin_path = os.path.join(modules_root, release, "modules.builtin")
    text = read_text(builtin_path)
    if text is not None:
        options = options_from_modules(parse_module_list(text), module_file_exists)
        return builtin_path, evaluate_features(options, loaded, module_file_exists)

    source = modules_path if loaded is not None else None
    return source, evaluate_features(None, loaded, module_file_exists)


def _fd_targets(fd_dir):
    targets = []
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):  # closed in the meantime
            targets.append(os.readlink(os.path.join(fd_dir, fd)))
    return targets


def read_processes(proc="/proc"):
    """Return ([(pid, name, fd link targets)], complete).

    complete is False when some process's descriptors could not be read (not root).
    """
    processes = []
    complete = True
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            targets = _fd_targets(os.path.join(proc, entry, "fd"))
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # the process has exited
        name = (read_text(os.path.join(proc, entry, "comm")) or "").strip()
        processes.append((int(entry), name, targets))
    return processes, complete


def read_ports(ports, proc="/proc"):
    """Return (find_port_holders result for ports, complete as in read_processes)."""
    sockets = {}
    for proto, listen_only in (("tcp", True), ("udp", False)):
        sockets[proto] = []
        for name in (proto, proto + "6"):
            text = read_text(os.path.join(proc, "net", name))
            if text is not None:  # no tcp6/udp6 when IPv6 is disabled
                sockets[proto].extend(parse_proc_net(text, listen_only))
    processes, complete = read_processes(proc)
    return find_port_holders(ports, sockets, processes), complete


def read_overlay_sandboxes(exec_root):
    """find_overlay_sandboxes of <exec_root>/netns; empty when it does not exist."""
    try:
        return find_overlay_sandboxes(os.listdir(os.path.join(exec_root, "netns")))
    except OSError:
        return []


def find_overlay_vxlans(names):
    """The overlay VXLAN devices among the host's own (root namespace) network devices, sorted.

    The engine makes each in the host's namespace, then moves it into its overlay's namespace; one
    left in the host's (an engine stopped in between, moby/libnetwork#1765) holds its VNI, and the
    overlay's next sandbox on this node fails with "error creating vxlan interface: file exists".
    """
    return sorted(name for name in names if _OVERLAY_VXLAN.match(name))


def read_overlay_vxlans(sys_class_net="/sys/class/net"):
    """find_overlay_vxlans of the host's network devices; empty when they cannot be listed."""
    try:
        return find_overlay_vxlans(os.listdir(sys_class_net))
    except OSError:
        return []


def read_addresses(proc="/proc"):
    """IPv4 then IPv6 addresses of the host's interfaces."""
    ipv4 = read_text(os.path.join(proc, "net", "fib_trie")) or ""
    ipv6 = read_text(os.path.join(proc, "net", "if_inet6")) or ""
    return parse_fib_trie(ipv4) + parse_if_inet6(ipv6)


def read_init_system(proc="/proc"):
    """Name of PID 1, None when unreadable."""
    return (read_text(os.path.join(proc, "1", "comm")) or "").strip() or None
