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


# `make test` names each failed test at the end of its output, where a CI that keeps only the
# output's tail shows it: the first failure of a run with its message (often the cause of those
# after it), each later one in a line. The file is tests/harness/test-stages.sh's.
_FAILURES = os.environ.get("SHOPSTREAM_FAILURES")
_reported = []


def pytest_runtest_logreport(report):
    if not _FAILURES or not report.failed:
        return
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = " ".join((crash.message if crash else str(report.longrepr)).split())
    width = 160 if _reported else 1500
    _reported.append(report.nodeid)
    with open(_FAILURES, "a", encoding="utf-8") as failures:
        failures.write(f"{'FAILED' if report.when == 'call' else 'ERROR'} {report.nodeid}\n  {message[:width]}\n")
