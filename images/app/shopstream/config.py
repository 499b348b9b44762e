"""Configuration and secrets for the ShopStream services (environment variables and
``*_FILE`` secret files), and their JSON logging.
"""

import json
import logging
import os
import sys
from datetime import datetime, timezone


class ConfigError(Exception):
    """A configuration or secret problem that must stop the service at startup."""


def env(name, default):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_int(name, default, minimum=0):
    raw = env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below its minimum {minimum}")
    return value


def secrets_dir():
    return os.path.realpath(env("SHOPSTREAM_SECRETS_DIR", "/run/secrets"))


def secret_path(env_var, default_name):
    """The file a secret is read from: $env_var (absolute, or a name under the secrets directory)."""
    name = env(env_var, default_name)
    base = secrets_dir()
    path = os.path.realpath(name if os.path.isabs(name) else os.path.join(base, name))
    if os.path.commonpath([base, path]) != base:
        raise ConfigError(f"{env_var}={name!r} is outside {base}: credentials are read only from there")
    return path


def read_secret(env_var, default_name, required=True, min_length=1):
    """A secret's value from its file (one trailing newline dropped); None if optional and absent.

    The error names the variable and the file, never the content.
    """
    path = secret_path(env_var, default_name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError(f"required secret file {path} is missing (set {env_var} to its name or path)") from None
    except PermissionError:
        raise ConfigError(f"secret file {path} ({env_var}) is not readable by uid {os.getuid()}") from None
    except IsADirectoryError:
        raise ConfigError(f"secret file {path} ({env_var}) is a directory") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} ({env_var}) is not UTF-8 text") from None
    if len(value) < min_length:
        raise ConfigError(f"secret file {path} ({env_var}) is shorter than {min_length} characters")
    return value


# --- JSON logging --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, service):
        super().__init__()
        self.service = service

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup_logging(service):
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(env("LOG_LEVEL", "INFO").upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
