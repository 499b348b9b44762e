# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check the syntax and structure of the platform's rendered configs, on the controller.

Documented in plugins/modules/config_syntax.py. Parses each config (YAML, JSON; nginx's is left
to nginx) and checks the structure its component needs. The real tools (nginx, promtool, amtool,
Traefik) do not run here: the config_check module runs them inside each component's image, for
the configs this returns in ``tool_checks``. Reads and returns; changes nothing.
"""

import json
import re

import yaml
from ansible.plugins.action import ActionBase

# Which tool checks what (in the component's image, by the config_check module).
TOOL_OF = {
    "traefik": "traefik",
    "nginx": "nginx",
    "promtool_config": "promtool",
    "promtool_rules": "promtool",
    "amtool": "amtool",
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


# Syntax and structure checks, for every config.


def load(text, check):
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


def validate(spec):
    mode = spec["mode"]
    result = {"checked": [], "skipped": [], "errors": [], "tool_checks": [], "syntax_checked": []}
    for config in spec["configs"]:
        key, check = config["key"], config["check"]
        name = spec.get("prefix", "") + key

        def error(tool, message, config=config, name=name):
            result["errors"].append(
                {"key": config["key"], "name": name, "target": config["target"], "tool": tool, "message": message}
            )

        try:
            check_structure(key, load(spec["contents"][key], check))
        except Invalid as exc:
            error("syntax", str(exc))
            continue
        except (AttributeError, TypeError) as exc:  # a list where a mapping belongs, or the reverse
            error("syntax", f"unexpected structure: {exc}")
            continue
        tools = ["syntax"] if check != "nginx" else []
        if tools:
            result["syntax_checked"].append(key)
        tool = TOOL_OF.get(check)
        if tool is None:
            result["checked"].append({"key": key, "tools": tools})
        elif mode == "skip":
            result["skipped"].append({"key": key, "tool": tool, "reason": "configs_validate is skip"})
        else:
            result["tool_checks"].append(
                {"key": key, "name": name, "check": check, "target": config["target"], "image": config.get("image")}
            )
    return result


ARGUMENT_SPEC = {
    # Entries of the configs role's catalog, as they are (it keeps more keys than these).
    "configs": {"type": "list", "elements": "dict", "required": True},
    "contents": {"type": "dict", "required": True},
    "mode": {"type": "str", "default": "auto", "choices": ["required", "auto", "skip"]},
    "prefix": {"type": "str", "default": ""},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        incomplete = [
            str(c.get("key", c)) for c in args["configs"] if not all(c.get(k) for k in ("key", "target", "check"))
        ]
        if incomplete:
            msg = f"config_syntax: each config needs key, target and check; these do not: {', '.join(incomplete)}."
            return dict(result, failed=True, msg=msg)
        missing = [c["key"] for c in args["configs"] if c["key"] not in args["contents"]]
        if missing:
            return dict(result, failed=True, msg=f"config_syntax: no rendered content for {', '.join(missing)}.")
        result.update(validate(args))
        result["changed"] = False
        return result
