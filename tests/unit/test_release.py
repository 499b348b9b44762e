"""A release (``ansible-galaxy collection build``) carries no vault, no vault password and no
development files, however many a deployed checkout holds; and it installs and runs."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VAULT_HEADER = b"$ANSIBLE_VAULT;1.1;AES256\n3132"
# Where sites and our own scenarios keep vaults and their passwords.
SEEDS = [
    "group_vars/all/vault.yml",
    "group_vars/swarm_managers/vault.yaml",
    "host_vars/manager1/vault.yml",
    ".vault-pass",
    ".vault_pass.txt",
    "vault-password",
]
DEVELOPMENT = {".ci", ".gitignore", ".ansible-lint", ".ansible-lint-ignore", "ansible.cfg", "Makefile",
               "pyproject.toml", "requirements.txt", "molecule", "tests", ".venv", ".collections"}  # fmt: skip


def run(*args, **kwargs):
    proc = subprocess.run(list(map(str, args)), capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release built from a copy of this tree in which every inventory and scenario holds vaults."""
    tree = tmp_path_factory.mktemp("tree") / "swarm"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv", ".collections"))
    (tree / ".vault-pass").write_text("top-level password\n")
    places = [*tree.glob("inventories/*"), *tree.glob("molecule/*/inventory")]
    assert len(places) >= 3, places
    seeded = []
    for place in places:
        for seed in SEEDS:
            path = place / seed
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(VAULT_HEADER if "vars" in seed else b"password\n")
            seeded.append(path.relative_to(tree).as_posix())
    out = tmp_path_factory.mktemp("release")
    run(BIN / "ansible-galaxy", "collection", "build", "--output-path", out, tree)
    (tarball,) = out.glob("shopstream-swarm-*.tar.gz")
    return tarball, seeded


def test_a_release_carries_no_vault_no_password_and_no_development_files(release):
    tarball, seeded = release
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        vaults = [m.name for m in tar.getmembers() if m.isfile() and tar.extractfile(m).read(14) == b"$ANSIBLE_VAULT"]
    assert vaults == []
    assert sorted(set(seeded) & set(names)) == []
    # A plugin's files are named after the plugin (plugins/filter/rabbitmq_password_hash.yml is a filter's
    # documentation); anywhere else, a file named like a password is one.
    password_named = [n for n in names if "password" in Path(n).name and not n.startswith("plugins/")]
    assert [n for n in names if "vault-pass" in n or "vault_pass" in n] + password_named == []
    assert sorted(DEVELOPMENT & {n.split("/")[0] for n in names}) == []
    # What a site needs is there: the pipeline's playbooks and roles, the modules, the kit's sources.
    for needed in ("playbooks/site.yml", "roles/secrets/tasks/vault.yml", "plugins/modules/swarm_rewire.py",
                   "meta/runtime.yml", "images/app/Dockerfile", "inventories/production/hosts.yml"):  # fmt: skip
        assert needed in names


def test_the_installed_release_runs_its_playbooks(release, tmp_path):
    tarball, _seeded = release
    installed = tmp_path / "collections"
    # Outside the checkout, with no ansible.cfg: only the installed collection (and the
    # community collections of PyPI's ansible package) can be found.
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(installed))
    run(BIN / "ansible-galaxy", "collection", "install", "--no-deps", "-p", installed, tarball, cwd=tmp_path, env=env)
    assert (installed / "ansible_collections/shopstream/swarm/MANIFEST.json").exists()
    # Every playbook by its collection name (only identifiers can be called so).
    names = sorted(path.stem for path in (ROOT / "playbooks").glob("*.yml"))
    assert {"site", "vault_init", "rotate_secrets", "rotate_configs", "remove_node", "scale"} <= set(names)
    proc = run(BIN / "ansible-playbook", *(f"shopstream.swarm.{name}" for name in names), "--syntax-check",
               "-i", "localhost,", cwd=tmp_path, env=env)  # fmt: skip
    for name in names:
        assert f"{installed}/ansible_collections/shopstream/swarm/playbooks/{name}.yml" in proc.stdout, proc.stdout
