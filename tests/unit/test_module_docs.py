"""Every module's documentation renders with ansible-doc, the reference users read (the text
form: ``--json`` only parses, and passes documentation that the text form cannot show)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (ROOT / "plugins/modules").glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module, tmp_path):
    # The collection as ansible-core finds it installed: ansible_collections/shopstream/swarm.
    (tmp_path / "ansible_collections/shopstream").mkdir(parents=True)
    (tmp_path / "ansible_collections/shopstream/swarm").symlink_to(ROOT)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), f"shopstream.swarm.{module}"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr[-1000:]
    assert f"shopstream.swarm.{module}" in proc.stdout and "OPTIONS" in proc.stdout
