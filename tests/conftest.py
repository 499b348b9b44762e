# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make `ansible_collections.shopstream.swarm` importable from a plain checkout.

Test modules import the collection at collection time, before any fixture runs, so
the symlink tree is built when this conftest is imported. Under ansible-test the
collection is already importable and nothing is done.
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile

try:
    importlib.import_module("ansible_collections.shopstream.swarm")  # only whether it imports: nothing is used
except ImportError:
    _root = tempfile.mkdtemp(prefix="shopstream-swarm-")
    atexit.register(shutil.rmtree, _root, ignore_errors=True)
    os.makedirs(os.path.join(_root, "ansible_collections", "shopstream"))
    os.symlink(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        os.path.join(_root, "ansible_collections", "shopstream", "swarm"),
    )
    sys.path.insert(0, _root)
