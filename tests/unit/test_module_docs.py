"""Every module's documentation renders with ansible-doc, the reference users read (the text
form: ``--json`` only parses, and passes documentation that the text form cannot show), and takes
the descriptions of its attributes from the shopstream.swarm.attributes fragment."""

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def written_documentation(module):
    """The module's DOCUMENTATION as written (fragments not merged), read without importing the module."""
    tree = ast.parse((ROOT / "plugins/modules" / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{module} has no DOCUMENTATION")


def fragment_documentation(name):
    fragment = importlib.import_module(f"ansible_collections.shopstream.swarm.plugins.doc_fragments.{name}")
    return yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)


@pytest.mark.parametrize("module", MODULES)
def test_the_module_takes_its_attribute_descriptions_from_the_fragment(module):
    # The descriptions are shopstream.swarm.attributes', the support (and details) each module's own.
    doc = written_documentation(module)
    fragments = doc.get("extends_documentation_fragment") or []
    assert "shopstream.swarm.attributes" in fragments
    attributes = dict(doc.get("attributes") or {})
    if "shopstream.swarm.versioned_object" in fragments:  # swarm_secret and swarm_config state theirs there
        attributes.update(fragment_documentation("versioned_object")["attributes"])
    assert {"check_mode", "diff_mode", "idempotent"} <= set(attributes)
    for name, attribute in attributes.items():
        assert "description" not in attribute, f"{name}: its description comes from shopstream.swarm.attributes"
        assert attribute.get("support") in ("full", "partial", "none", "N/A"), name
    if "action" in attributes:
        assert "shopstream.swarm.attributes.action" in fragments
