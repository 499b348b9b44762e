# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check configs with the tool inside the image of the service that reads them.

Each check is one throwaway container of that image: created with no network and the tool as
entrypoint, given every rendered config at its container path (``docker cp`` of a tar, so the
image needs neither a shell nor tar), started attached, then removed. The tool reads the
files exactly where the service will, with the image's own includes (nginx.conf) and
versions: what the controller happens to have installed plays no part.
"""

import io
import json
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerAPIError, list_services
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    CONFIG,
    ObjectStore,
    mounts_any,
    versioned_name,
)

# check -> (tool, argv after the tool, given the config's container path)
TOOLS = {
    "nginx": ("nginx", lambda target: ["-t"]),
    "promtool_config": ("promtool", lambda target: ["check", "config", target]),
    "promtool_rules": ("promtool", lambda target: ["check", "rules", target]),
    "amtool": ("amtool", lambda target: ["check-config", target]),
    # Traefik has no check command (traefik/traefik#6451, #9916: declined). `traefik healthcheck`
    # loads the static configuration with the server's own loader (unknown keys, bad values and
    # options removed in v3 are fatal there) and only then calls /ping, which no network reaches.
    "traefik": ("traefik", lambda target: ["healthcheck", f"--configFile={target}"]),
}
# Seconds `docker create` may take to pull an image.
PULL_TIMEOUT = 600
# Traefik's answers once its configuration was read: /ping is unreachable, or not enabled.
TRAEFIK_LOADED = ("Error calling healthcheck", "please enable `ping`")


def tool_of(check):
    return TOOLS[check][0]


def argv(check, target):
    tool, args = TOOLS[check]
    return [tool, *args(target)]


def archive(files):
    """A tar of ``{container path: text}``: regular files only, 0644, root's, no times.

    No directory entries: the engine creates missing parents and leaves existing ones as the
    image has them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode("utf-8")
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def verdict(check, rc, output):
    """None when the tool accepted the config, else the message to show."""
    output = output.strip()
    if check == "traefik":
        if rc == 0 or any(marker in output for marker in TRAEFIK_LOADED):
            return None
        errors = []
        for line in output.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            errors.append(record.get("error") or record.get("message") or line if isinstance(record, dict) else line)
        return "; ".join(errors) or f"exit status {rc}"
    return None if rc == 0 else (output or f"exit status {rc}")


def shown(image):
    """An image reference without its digest, for messages."""
    return image.split("@", 1)[0]


def users_image(client, logical):
    """The image of the first service (by name) that mounts a version of config ``logical``, or None."""
    try:
        ids = {version["ID"] for version in ObjectStore(client, CONFIG).versions(logical)}
        if not ids:
            return None
        users = sorted(
            (s for s in list_services(client) if mounts_any(s, ids)), key=lambda s: s["Spec"].get("Name", "")
        )
    except DockerAPIError:  # not a swarm manager: no service reads the config yet
        return None
    for service in users:
        image = ((service["Spec"].get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
        if image:
            return image
    return None


class ImageAbsent(RuntimeError):
    """The image is not on the host and may not be pulled (check mode)."""


class Runner:
    """Runs one check in a throwaway container through the docker CLI (it pulls with the stored logins)."""

    def __init__(self, docker="docker", timeout=60, pull=True):
        self.docker = docker
        self.timeout = timeout
        self.pull = pull

    def _cli(self, *args, data=None, timeout=None, stdout_only=False):
        """``(rc, output)``: stdout and stderr together, or stdout alone (a pull reports on stderr)."""
        # Our own docker CLI with arguments we built: no untrusted shell.
        proc = subprocess.run(  # noqa: S603
            [self.docker, *args], input=data, capture_output=True, timeout=timeout or self.timeout, check=False
        )
        out = proc.stdout if stdout_only and proc.returncode == 0 else proc.stdout + proc.stderr
        return proc.returncode, out.decode("utf-8", "replace")

    def run(self, image, command, tar):
        """``(rc, output)`` of ``command`` in ``image`` with ``tar`` unpacked at /; raises RuntimeError
        when the container cannot be made (the image cannot be pulled, the engine refuses)."""
        try:
            # A pull may take longer than a check: it gets PULL_TIMEOUT.
            rc, out = self._cli(
                "create", "--pull", "missing" if self.pull else "never", "--network", "none",
                "--label", "shopstream.swarm.config-check=true", "--entrypoint", command[0], image, *command[1:],
                stdout_only=True, timeout=max(self.timeout, PULL_TIMEOUT),
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{shown(image)} could not be pulled within {exc.timeout} s") from exc
        if rc != 0 and not self.pull and "No such image" in out:
            raise ImageAbsent(f"{shown(image)} is not on this host yet, and check mode pulls nothing")
        if rc != 0:
            raise RuntimeError(f"cannot create a container of {shown(image)}: {out.strip()}")
        container = out.strip().splitlines()[-1]
        try:
            rc, out = self._cli("cp", "-", f"{container}:/", data=tar)
            if rc != 0:
                raise RuntimeError(f"cannot copy the configs into a container of {shown(image)}: {out.strip()}")
            return self._cli("start", "--attach", container)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{command[0]} did not finish within {self.timeout} s") from exc
        finally:
            self._cli("rm", "--force", container)


def existing_version(client, config, files, hash_key):
    """Whether the version this content gets exists already (checked when it was made), or None
    when the swarm cannot say."""
    name = versioned_name(config["name"], files[config["target"]].encode("utf-8"), hash_key or None)
    try:
        return any(v["Spec"]["Name"] == name for v in ObjectStore(client, CONFIG).versions(config["name"]))
    except DockerAPIError:
        return None


def check_all(configs, files, images, runner, client=None, required=True, hash_key=None, skip_existing=False):
    """Check every config of ``configs`` ([{key, name, check, target, image}], ``image`` naming the
    component) in its component's image: ``images[component]``, else the image of a service that
    mounts the config now. With ``skip_existing``, a config whose version (named after ``hash_key``)
    exists is not checked again. Returns ``{"checked", "not_checked", "errors", "unchanged"}``."""
    result = {"checked": [], "not_checked": [], "errors": [], "unchanged": []}
    tar = archive(files)
    jobs = []
    for config in configs:
        tool = tool_of(config["check"])
        # Nothing new is made of an unchanged config: its version was checked when it was made.
        if skip_existing and client and existing_version(client, config, files, hash_key):
            result["unchanged"].append({"key": config["key"], "tool": tool})
            continue
        image = images.get(config["image"]) or (users_image(client, config["name"]) if client else None)
        if not image:
            reason = (
                f"no image of {config['image']} to run {tool} in: none was built or pulled in this run "
                f"and no service uses {config['name']}; run the images step first (site.yml does), "
                f"or set configs_validate_images.{config['image']}"
            )
            if required:
                result["errors"].append(error(config, tool, reason + ", or configs_validate: auto to skip the check"))
            else:
                result["not_checked"].append({"key": config["key"], "tool": tool, "reason": reason})
            continue
        jobs.append((config, tool, image))

    def one(job):
        config, _tool, image = job
        try:
            rc, output = runner.run(image, argv(config["check"], config["target"]), tar)
        except ImageAbsent as exc:
            return exc
        except RuntimeError as exc:
            return str(exc)
        return verdict(config["check"], rc, output)

    # One wave: each check is mostly waiting on the engine.
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        outcomes = list(pool.map(one, jobs))
    for (config, tool, image), message in zip(jobs, outcomes):
        if isinstance(message, ImageAbsent):
            result["not_checked"].append({"key": config["key"], "tool": tool, "reason": str(message)})
        elif message is None:
            result["checked"].append({"key": config["key"], "tool": tool, "image": shown(image)})
        else:
            result["errors"].append(error(config, tool, message))
    return result


def error(config, tool, message):
    return {
        "key": config["key"],
        "name": config["name"],
        "target": config["target"],
        "tool": tool,
        "message": message,
    }
