# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline image kit: which images there are, their tags, their build order, and the build.

Standard library only, so that it runs on a bare build host (as the module
``shopstream.swarm.kit_image``) and from a shell::

    python3 plugins/module_utils/_image_kit.py [--images-dir images] [NAME ...]

builds the named images (all by default) and their parents, in order, skipping every image
whose tag already exists, and prints each image's build time and size.

An image is a directory of ``images/`` holding a ``Dockerfile``; its parent is the kit image
named by ``ARG BASE=shopstream/<parent>`` (the builder passes ``--build-arg BASE=<parent ref>``)
or by a literal ``FROM shopstream/<parent>``. The directory ``base`` holds no Dockerfile but
``rootfs.sh`` and ``packages``: a Debian rootfs made by debootstrap and imported with
``docker import``. A ``wheels.txt`` in an image directory lists pinned Python wheels that the
builder downloads on the build host with pip (which follows the host's pip configuration) into
``wheels/`` of the build context.

Tags are content hashes: of every file of the image directory and the parent's tag (for
``base``: of its files, the apt mirror and the suite). Identical inputs give the same tag, so an
image whose tag exists is never rebuilt, and any change to a parent rebuilds its children.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BASE_NAME = "base"
DEFAULT_REPOSITORY = "shopstream"
DEFAULT_SUITE = "bookworm"
TAG_LENGTH = 12

# Components the kit cannot build: no package of them exists in any mirror an air-gapped
# site (or our build machines) can reach. They keep their official images.
OFFICIAL_ONLY = {
    "minio": "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z",
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:8.17.4",
    "grafana": "grafana/grafana:11.6.1",
    "loki": "grafana/loki:3.5.0",
    "promtail": "grafana/promtail:3.5.0",
}

# Files that are build by-products, never inputs.
_IGNORED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".git", "wheels"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", "~", ".swp")

_ARG_BASE_RE = re.compile(r"^\s*ARG\s+BASE\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", re.IGNORECASE | re.MULTILINE)


class KitError(Exception):
    """An input of the kit is wrong; the message names it and the fix."""


class ImageSpec:
    def __init__(self, name, path, parent, kind):
        self.name = name
        self.path = path
        self.parent = parent
        self.kind = kind  # "rootfs" or "dockerfile"

    def __repr__(self):
        return f"ImageSpec({self.name!r}, parent={self.parent!r}, kind={self.kind!r})"


# ---------------------------------------------------------------- pure helpers


def parse_apt_mirror(sources):
    """Return the main Debian archive URI from apt sources.

    ``sources`` is a list of ``(filename, text)``: deb822 ``*.sources`` files (their ``URIs:``
    field) or one-line ``sources.list`` files (``deb URI SUITE ...``). Security archives
    (a URI or suite ending in ``-security``) and ``deb-src`` entries are skipped; the first
    remaining URI wins. Returns None when there is none.
    """
    for filename, text in sources:
        if filename.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _colon, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "deb").split():
                    continue
                suites = fields.get("suites", "").split()
                if suites and all(s.endswith("-security") for s in suites):
                    continue
                for uri in fields.get("uris", "").split():
                    if not uri.rstrip("/").endswith("-security"):
                        return uri
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) < 3 or words[0] != "deb":
                    continue
                uri, suite = words[1], words[2]
                if not uri.rstrip("/").endswith("-security") and not suite.endswith("-security"):
                    return uri
    return None


def host_apt_mirror(root="/"):
    """The build host's main Debian mirror, read from its apt sources (never hard-coded)."""
    paths = sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.sources")))
    paths += [os.path.join(root, "etc/apt/sources.list")]
    paths += sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.list")))
    sources = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                sources.append((path, handle.read()))
        except OSError:
            continue
    mirror = parse_apt_mirror(sources)
    if not mirror:
        raise KitError(
            "No Debian mirror found in the build host's apt sources (/etc/apt/sources.list.d/*.sources "
            "or /etc/apt/sources.list); configure apt there or pass the mirror explicitly."
        )
    return mirror


def dockerfile_parent(text, repository=DEFAULT_REPOSITORY):
    """The kit image a Dockerfile builds on, or None when it builds on no kit image.

    ``ARG BASE=<repository>/<name>[:tag]`` wins (the builder overrides it with the exact
    ref); otherwise a literal ``FROM <repository>/<name>[:tag]`` of the first stage.
    """
    prefix = repository + "/"
    defaults = _ARG_BASE_RE.findall(text)[:1]
    froms = _FROM_RE.findall(text)[:1]
    for ref in defaults + froms:
        if ref.startswith(prefix):
            return ref[len(prefix) :].split(":", 1)[0].split("@", 1)[0]
    if not defaults and froms and froms[0] in ("${BASE}", "$BASE"):
        raise KitError(
            f"The Dockerfile uses FROM {froms[0]} but declares no default kit parent; "
            f"write 'ARG BASE={repository}/<parent image>' before it."
        )
    return None


def _input_files(path):
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES)
        for filename in sorted(filenames):
            if filename in _IGNORED_NAMES or filename.endswith(_IGNORED_SUFFIXES):
                continue
            yield os.path.join(dirpath, filename)


def tree_digest(path):
    """sha256 of every input file of a directory: relative path, executable bit, content."""
    digest = hashlib.sha256()
    for full in _input_files(path):
        rel = os.path.relpath(full, path).replace(os.sep, "/")
        mode = "x" if os.access(full, os.X_OK) else "-"
        digest.update(f"{rel}\0{mode}\0".encode())
        with open(full, "rb") as handle:
            data = handle.read()
        digest.update(f"{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def image_tag(name, files_digest, parent_tag=None, extra=()):
    """The tag of an image: a hash of its name, its files, its parent's tag and extra inputs."""
    digest = hashlib.sha256()
    for part in (name, files_digest, parent_tag or "", *extra):
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:TAG_LENGTH]


def build_order(specs, names=None):
    """Names of ``names`` (all by default) and their ancestors, every parent before its children.

    Raises KitError for an unknown image, a missing parent or a cycle.
    """
    wanted = sorted(specs) if names is None else list(names)
    order, state = [], {}

    def visit(name, child):
        if name not in specs:
            if name in OFFICIAL_ONLY:
                raise KitError(official_only_message(name))
            if child:
                raise KitError(f"Image '{child}' builds on '{name}', which is not a directory of the kit.")
            raise KitError(f"No image '{name}' in the kit (known: {', '.join(sorted(specs))}).")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise KitError(f"Images build on each other in a cycle through '{name}'.")
        state[name] = "visiting"
        if specs[name].parent:
            visit(specs[name].parent, name)
        state[name] = "done"
        order.append(name)

    for name in wanted:
        visit(name, None)
    return order


def official_only_message(name):
    return (
        f"The kit cannot build '{name}': no mirror an offline site reaches carries it. "
        f"Use its official image ({OFFICIAL_ONLY[name]}), imported with 'docker load' from an archive "
        f"made where a registry is reachable."
    )


def discover(images_dir, repository=DEFAULT_REPOSITORY):
    """Map each image name to its ImageSpec: every directory holding a Dockerfile, and ``base``."""
    if not os.path.isdir(images_dir):
        raise KitError(f"The kit's images directory {images_dir} does not exist.")
    specs = {}
    for entry in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, entry)
        if not os.path.isdir(path):
            continue
        dockerfile = os.path.join(path, "Dockerfile")
        if entry == BASE_NAME:
            if not os.path.isfile(os.path.join(path, "rootfs.sh")):
                raise KitError(f"{path} must hold rootfs.sh (the debootstrap script of the base image).")
            specs[entry] = ImageSpec(entry, path, None, "rootfs")
        elif os.path.isfile(dockerfile):
            with open(dockerfile, encoding="utf-8") as handle:
                try:
                    parent = dockerfile_parent(handle.read(), repository)
                except KitError as exc:
                    raise KitError(f"{dockerfile}: {exc}") from None
            specs[entry] = ImageSpec(entry, path, parent, "dockerfile")
    return specs


def human_size(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000.0
    return str(size)


# ---------------------------------------------------------------- the build


class Kit:
    """Tags and builds the kit's images with the docker CLI (and debootstrap for the base)."""

    def __init__(
        self,
        images_dir,
        repository=DEFAULT_REPOSITORY,
        mirror=None,
        suite=DEFAULT_SUITE,
        docker="docker",
        pip=None,
        log=None,
        run=None,
    ):
        self.images_dir = os.path.abspath(images_dir)
        self.repository = repository
        self.suite = suite
        self._mirror = mirror
        self.docker = docker
        self.pip = pip or [sys.executable, "-m", "pip"]
        self.log = log or (lambda message: None)
        self._run = run or self._subprocess_run
        # Dockerfiles name parents as shopstream/<name> whatever repository the tags go to.
        self.specs = discover(self.images_dir)
        self._tags = {}

    @staticmethod
    def _subprocess_run(argv, stdin=None, env=None):
        proc = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, env=env, check=False)  # noqa: S603 - argv lists, no shell
        return proc.returncode, proc.stdout, proc.stderr

    @property
    def mirror(self):
        if not self._mirror:
            self._mirror = host_apt_mirror()
        return self._mirror

    def spec(self, name):
        if name not in self.specs:
            build_order(self.specs, [name])  # raises the right message
        return self.specs[name]

    def tag(self, name):
        """The content tag of an image (and, recursively, of its parents)."""
        if name not in self._tags:
            spec = self.spec(name)
            if spec.kind == "rootfs":
                extra = (self.mirror, self.suite)
                parent_tag = None
            else:
                extra = ()
                parent_tag = self.tag(spec.parent) if spec.parent else None
            self._tags[name] = image_tag(name, tree_digest(spec.path), parent_tag, extra)
        return self._tags[name]

    def ref(self, name):
        return f"{self.repository}/{name}:{self.tag(name)}"

    def order(self, names=None):
        return build_order(self.specs, names)

    def size(self, ref):
        rc, out, _err = self._run([self.docker, "image", "inspect", "--format", "{{.Size}}", ref])
        return int(out.strip()) if rc == 0 and out.strip().isdigit() else None

    def exists(self, ref):
        return self.size(ref) is not None

    def _check(self, argv, what, **kwargs):
        rc, out, err = self._run(argv, **kwargs)
        if rc != 0:
            tail = "\n".join(f"{out or ''}\n{err or ''}".strip().splitlines()[-25:])
            raise KitError(f"{what} failed (exit {rc}): {tail}")
        return out

    def build(self, name, check_mode=False):
        """Build one image unless its tag exists; its parent must exist (see build_all).

        Returns a dict: name, image, tag, parent, changed, seconds, size.
        """
        spec = self.spec(name)
        ref = self.ref(name)
        result = {"name": name, "image": ref, "tag": self.tag(name), "changed": False, "seconds": 0.0}
        result["parent"] = self.ref(spec.parent) if spec.parent else None
        size = self.size(ref)
        if size is not None:
            result["size"] = size
            return result
        result["changed"] = True
        if check_mode:
            result["size"] = None
            return result
        if spec.parent and not self.exists(result["parent"]):
            raise KitError(
                f"Image '{name}' builds on {result['parent']}, which is not built yet; build '{spec.parent}' first."
            )
        start = time.monotonic()
        if spec.kind == "rootfs":
            self._build_rootfs(spec, ref)
        else:
            self._build_dockerfile(spec, ref, result["parent"])
        result["seconds"] = round(time.monotonic() - start, 1)
        result["size"] = self.size(ref)
        return result

    def build_all(self, names=None, check_mode=False):
        results = []
        for name in self.order(names):
            self.log(f"{name}: {self.ref(name)} ...")
            result = self.build(name, check_mode)
            self.log(f"{name}: {'built' if result['changed'] else 'unchanged'}")
            results.append(result)
        return results

    def _build_rootfs(self, spec, ref):
        for tool in ("debootstrap", "tar"):
            if not shutil.which(tool):
                raise KitError(f"The base image needs '{tool}' on the build host: apt-get install -y {tool}.")
        if os.geteuid() != 0:
            raise KitError("The base image is made by debootstrap, which must run as root on the build host.")
        workdir = tempfile.mkdtemp(prefix="kit-rootfs-", dir="/var/tmp")
        try:
            rootfs = os.path.join(workdir, "rootfs")
            self._check(
                ["bash", os.path.join(spec.path, "rootfs.sh"), rootfs, self.mirror, self.suite],
                f"debootstrap of the base image from {self.mirror}",
            )
            tarball = os.path.join(workdir, "rootfs.tar")
            self._check(["tar", "-C", rootfs, "--numeric-owner", "-cf", tarball, "."], "packing the base rootfs")
            self._check(
                [
                    self.docker,
                    "import",
                    "--change",
                    'CMD ["bash"]',
                    "--change",
                    "ENV LANG=C.UTF-8",
                    "--change",
                    f"LABEL org.shopstream.kit.inputs={self.tag(spec.name)}",
                    tarball,
                    ref,
                ],
                f"docker import of {ref}",
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _build_dockerfile(self, spec, ref, parent_ref):
        wheels = os.path.join(spec.path, "wheels.txt")
        context = spec.path
        workdir = None
        try:
            if os.path.isfile(wheels):
                workdir = tempfile.mkdtemp(prefix=f"kit-{spec.name}-", dir="/var/tmp")
                context = os.path.join(workdir, "context")
                shutil.copytree(spec.path, context, ignore=shutil.ignore_patterns(*_IGNORED_NAMES))
                self._check(
                    [
                        *self.pip,
                        "download",
                        "--no-deps",
                        "--only-binary=:all:",
                        "--dest",
                        os.path.join(context, "wheels"),
                        "-r",
                        wheels,
                    ],
                    f"downloading the wheels of '{spec.name}' ({wheels}) with pip",
                )
            argv = [self.docker, "build", "--tag", ref, "--label", f"org.shopstream.kit.inputs={self.tag(spec.name)}"]
            if parent_ref:
                argv += ["--build-arg", f"BASE={parent_ref}"]
            env = dict(os.environ, DOCKER_BUILDKIT="0")
            self._check([*argv, context], f"docker build of {ref}", env=env)
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)


def format_table(results):
    lines = [f"{'image':<14} {'result':<10} {'seconds':>8} {'size':>9}  reference"]
    for r in results:
        size = human_size(r["size"]) if r.get("size") is not None else "-"
        state = "built" if r["changed"] else "unchanged"
        lines.append(f"{r['name']:<14} {state:<10} {r['seconds']:>8.1f} {size:>9}  {r['image']}")
    total = sum(r["seconds"] for r in results)
    lines.append(f"{'total':<14} {sum(1 for r in results if r['changed']):>2} built {total:>8.1f}")
    return "\n".join(lines)


def main(argv=None):
    import argparse

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Build the offline image kit; print build time and size per image.")
    parser.add_argument("names", nargs="*", help="images to build with their parents (default: all)")
    parser.add_argument("--images-dir", default=os.path.join(here, "..", "..", "images"))
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY)
    parser.add_argument("--mirror", help="Debian mirror (default: from this host's apt sources)")
    parser.add_argument("--suite", default=DEFAULT_SUITE)
    parser.add_argument("--tags", action="store_true", help="print name=reference per image, build nothing")
    args = parser.parse_args(argv)
    # Run from a shell (by hand, molecule's prepare, tests/images), never inside a module: it writes
    # to stdout and stderr and gives its exit status itself.
    try:
        kit = Kit(args.images_dir, args.repository, args.mirror, args.suite, log=lambda m: sys.stderr.write(f"{m}\n"))
        if args.tags:
            for name in kit.order(args.names or None):
                sys.stdout.write(f"{name}={kit.ref(name)}\n")
            return 0
        results = kit.build_all(args.names or None)
    except KitError as exc:
        sys.stderr.write(f"image kit: {exc}\n")
        return 1
    sys.stdout.write(format_table(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
