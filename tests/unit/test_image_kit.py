"""The image kit's pure logic: mirror discovery, parents, content tags, build order, skip rules."""

import os

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils import _image_kit as kit
from ansible_collections.shopstream.swarm.plugins.module_utils._image_kit import (
    OFFICIAL_ONLY,
    ImageSpec,
    Kit,
    KitError,
    build_order,
    discover,
    dockerfile_parent,
    image_tag,
    parse_apt_mirror,
    tree_digest,
)

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    "sources, expected",
    [
        ([("/etc/apt/sources.list.d/debian.sources", DEB822)], "http://mirror.example/debian"),
        (
            [("/etc/apt/sources.list.d/debian.sources", DEB822.split("\n\n")[1])],
            None,
        ),
        (
            [("/etc/apt/sources.list.d/x.sources", "Types: deb\nEnabled: no\nURIs: http://off/\nSuites: bookworm\n")],
            None,
        ),
        (
            [("/etc/apt/sources.list.d/x.sources", "Types: deb-src\nURIs: http://src/\nSuites: bookworm\n")],
            None,
        ),
        (
            [
                (
                    "/etc/apt/sources.list",
                    "# comment\ndeb-src http://src/ bookworm main\n"
                    "deb http://security.debian.org/debian-security bookworm-security main\n"
                    "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n",
                )
            ],
            "http://list.example/debian",
        ),
        (
            [("/etc/apt/sources.list", ""), ("/etc/apt/sources.list.d/d.sources", DEB822)],
            "http://mirror.example/debian",
        ),
        ([], None),
    ],
    ids=["deb822", "security-only", "disabled", "deb-src", "sources.list", "list-then-deb822", "nothing"],
)
def test_parse_apt_mirror(sources, expected):
    assert parse_apt_mirror(sources) == expected


def test_host_apt_mirror_reads_the_host_files(tmp_path):
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list.d/debian.sources").write_text(DEB822)
    assert kit.host_apt_mirror(str(tmp_path)) == "http://mirror.example/debian"
    (tmp_path / "etc/apt/sources.list.d/debian.sources").unlink()
    with pytest.raises(KitError, match="No Debian mirror found in the build host's apt sources"):
        kit.host_apt_mirror(str(tmp_path))


@pytest.mark.parametrize(
    "dockerfile, expected",
    [
        ("ARG BASE=shopstream/python\nFROM ${BASE}\n", "python"),
        ("# c\nARG BASE=shopstream/nginx:latest\nFROM $BASE AS x\n", "nginx"),
        ("FROM shopstream/base:abc123\nRUN true\n", "base"),
        ("ARG BASE=shopstream/base\nFROM ${BASE} AS unpack\nFROM ${BASE}\n", "base"),
        ("FROM debian:bookworm\n", None),
        ("ARG BASE=other/python\nFROM ${BASE}\n", None),
    ],
)
def test_dockerfile_parent(dockerfile, expected):
    assert dockerfile_parent(dockerfile) == expected


def test_dockerfile_parent_needs_a_default_for_base():
    with pytest.raises(KitError, match="write 'ARG BASE=shopstream/<parent image>'"):
        dockerfile_parent("ARG BASE\nFROM ${BASE}\n")


def _image(root, name, dockerfile, **files):
    path = root / name
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    for filename, content in files.items():
        (path / filename).write_text(content)
    return path


@pytest.fixture
def images(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "rootfs.sh").write_text("debootstrap ...\n")
    (base / "packages").write_text("ca-certificates\n")
    _image(tmp_path, "python", "ARG BASE=shopstream/base\nFROM ${BASE}\n")
    _image(tmp_path, "app", "ARG BASE=shopstream/python\nFROM ${BASE}\n", **{"app.py": "print(1)\n"})
    _image(tmp_path, "redis", "ARG BASE=shopstream/base\nFROM ${BASE}\n")
    (tmp_path / "README.md").write_text("not an image\n")
    (tmp_path / "notes").mkdir()
    return tmp_path


def test_discover_finds_dockerfile_dirs_and_base(images):
    specs = discover(str(images))
    assert sorted(specs) == ["app", "base", "python", "redis"]
    assert (specs["base"].kind, specs["base"].parent) == ("rootfs", None)
    assert specs["app"].parent == "python"


def test_discover_wants_rootfs_sh_in_base(tmp_path):
    (tmp_path / "base").mkdir()
    with pytest.raises(KitError, match="must hold rootfs.sh"):
        discover(str(tmp_path))


def test_tree_digest_covers_content_names_and_mode_but_not_caches(images):
    app = images / "app"
    first = tree_digest(str(app))
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (app / "wheels").mkdir()
    (app / "wheels" / "x.whl").write_bytes(b"\0")
    assert tree_digest(str(app)) == first
    (app / "app.py").write_text("print(2)\n")
    second = tree_digest(str(app))
    assert second != first
    os.chmod(app / "app.py", 0o700)
    assert tree_digest(str(app)) != second
    os.chmod(app / "app.py", 0o600)
    (app / "app.py").rename(app / "main.py")
    assert tree_digest(str(app)) != second


def test_image_tag_depends_on_every_input():
    tag = image_tag("redis", "d1", "p1")
    assert len(tag) == 12 and tag == image_tag("redis", "d1", "p1")
    assert (
        len({tag, image_tag("redis", "d2", "p1"), image_tag("redis", "d1", "p2"), image_tag("nginx", "d1", "p1")}) == 4
    )
    assert image_tag("base", "d", None, ("http://a/", "bookworm")) != image_tag(
        "base", "d", None, ("http://b/", "bookworm")
    )


def _specs(**parents):
    return {name: ImageSpec(name, "/x/" + name, parent, "dockerfile") for name, parent in parents.items()}


@pytest.mark.parametrize(
    "names, expected",
    [
        (None, ["base", "python", "app", "nginx", "frontend"]),
        (["app"], ["base", "python", "app"]),
        (["frontend", "app"], ["base", "nginx", "frontend", "python", "app"]),
        (["base"], ["base"]),
    ],
)
def test_build_order_puts_parents_first(names, expected):
    specs = _specs(base=None, python="base", nginx="base", app="python", frontend="nginx")
    order = build_order(specs, names)
    assert order == expected
    for name in order:
        if specs[name].parent:
            assert order.index(specs[name].parent) < order.index(name)


@pytest.mark.parametrize(
    "specs, names, message",
    [
        (_specs(app="python"), ["app"], "Image 'app' builds on 'python', which is not a directory of the kit."),
        (_specs(a="b", b="a"), ["a"], "Images build on each other in a cycle through 'a'."),
        (_specs(base=None), ["nope"], "No image 'nope' in the kit (known: base)."),
    ],
)
def test_build_order_errors(specs, names, message):
    with pytest.raises(KitError) as exc:
        build_order(specs, names)
    assert str(exc.value) == message


@pytest.mark.parametrize("name", sorted(OFFICIAL_ONLY))
def test_the_kit_says_it_cannot_build_official_only_components(name):
    with pytest.raises(KitError) as exc:
        build_order(_specs(base=None), [name])
    assert str(exc.value).startswith(f"The kit cannot build '{name}': no mirror an offline site reaches carries it.")
    assert OFFICIAL_ONLY[name] in str(exc.value)


class FakeDocker:
    """Records commands; images in `present` exist (with a size)."""

    def __init__(self, present=()):
        self.present = set(present)
        self.calls = []

    def __call__(self, argv, stdin=None, env=None):
        self.calls.append(argv)
        if argv[1:3] == ["image", "inspect"]:
            return (0, "1234\n", "") if argv[-1] in self.present else (1, "", "No such image")
        if argv[1] == "build":
            self.present.add(argv[argv.index("--tag") + 1])
            return 0, "", ""
        return 1, "", "unexpected"


def test_build_skips_an_existing_tag_and_builds_a_missing_one(images):
    fake = FakeDocker()
    k = Kit(str(images), mirror="http://mirror.example/debian", run=fake)
    fake.present = {k.ref("base"), k.ref("python")}
    assert k.build("python") == {
        "name": "python",
        "image": k.ref("python"),
        "tag": k.tag("python"),
        "parent": k.ref("base"),
        "changed": False,
        "seconds": 0.0,
        "size": 1234,
    }
    assert not [c for c in fake.calls if c[1] == "build"]

    checked = k.build("app", check_mode=True)
    assert checked["changed"] and checked["size"] is None
    assert not [c for c in fake.calls if c[1] == "build"]

    built = k.build("app")
    assert built["changed"] and built["size"] == 1234
    build = next(c for c in fake.calls if c[1] == "build")
    assert build[build.index("--build-arg") + 1] == f"BASE={k.ref('python')}"
    assert build[-1] == str(images / "app")


def test_build_wants_the_parent_built_first(images):
    fake = FakeDocker()
    k = Kit(str(images), mirror="http://m/", run=fake)
    with pytest.raises(
        KitError, match=r"builds on shopstream/python:\w{12}, which is not built yet; build 'python' first"
    ):
        k.build("app")


def test_a_changed_parent_changes_the_childrens_tags_only(images):
    k1 = Kit(str(images), mirror="http://m/", run=FakeDocker())
    before = {name: k1.tag(name) for name in k1.specs}
    (images / "python" / "extra.txt").write_text("x\n")
    k2 = Kit(str(images), mirror="http://m/", run=FakeDocker())
    after = {name: k2.tag(name) for name in k2.specs}
    assert [n for n in sorted(before) if before[n] != after[n]] == ["app", "python"]
    k3 = Kit(str(images), mirror="http://other/", run=FakeDocker())
    assert all(k3.tag(n) != after[n] for n in after), "a different mirror must rebuild everything"


def test_format_table_prints_time_and_size():
    table = kit.format_table(
        [
            {"name": "base", "image": "shopstream/base:1", "changed": True, "seconds": 31.8, "size": 90_100_000},
            {"name": "redis", "image": "shopstream/redis:2", "changed": False, "seconds": 0.0, "size": 171_300_000},
        ]
    )
    assert "base           built          31.8   90.1 MB  shopstream/base:1" in table
    assert "redis          unchanged       0.0  171.3 MB" in table


def test_rootfs_is_imported_from_a_tarball(images, monkeypatch):
    fake = FakeDocker()
    k = Kit(str(images), mirror="http://m/", run=fake)
    monkeypatch.setattr(kit.shutil, "which", lambda tool: "/usr/bin/" + tool)
    monkeypatch.setattr(kit.os, "geteuid", lambda: 0)

    def run(argv, stdin=None, env=None):
        fake.calls.append(argv)
        if argv[0] == "tar":
            open(argv[argv.index("-cf") + 1], "wb").close()
        if argv[1:2] == ["import"]:
            assert os.path.isfile(argv[-2]) and argv[-2].endswith("rootfs.tar")
            fake.present.add(argv[-1])
        return fake(argv) if argv[1:3] == ["image", "inspect"] else (0, "", "")

    k._run = run
    result = k.build("base")
    assert result["changed"]
    debootstrap = next(c for c in fake.calls if c[0] == "bash")
    assert debootstrap[1] == str(images / "base" / "rootfs.sh")
    assert debootstrap[3:] == ["http://m/", "bookworm"]
    assert any(c[1:2] == ["import"] and c[-1] == k.ref("base") for c in fake.calls)


def test_another_repository_keeps_the_parents_and_passes_its_own_refs(images):
    fake = FakeDocker()
    k = Kit(str(images), repository="mirror.example/kit", mirror="http://m/", run=fake)
    fake.present = {k.ref("base"), k.ref("python")}
    assert k.spec("app").parent == "python"
    k.build("app")
    build = next(c for c in fake.calls if c[1] == "build")
    assert build[build.index("--build-arg") + 1] == f"BASE=mirror.example/kit/python:{k.tag('python')}"
    assert build[build.index("--tag") + 1].startswith("mirror.example/kit/app:")
