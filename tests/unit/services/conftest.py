"""Make the services' package (images/app/shopstream) importable without installing it."""

import os
import sys

import pytest

APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "images", "app")
if os.path.abspath(APP_DIR) not in sys.path:
    sys.path.insert(0, os.path.abspath(APP_DIR))


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    """An empty secrets directory standing in for /run/secrets."""
    directory = tmp_path / "secrets"
    directory.mkdir()
    monkeypatch.setenv("SHOPSTREAM_SECRETS_DIR", str(directory))
    return directory
