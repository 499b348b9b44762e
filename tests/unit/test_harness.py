# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""make test's runner names each failed test with its message at the end of its output (a CI keeps
the tail), and a failed playbook run's account puts its failure first."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from runner import Run

ROOT = Path(__file__).resolve().parents[2]


def test_the_end_of_make_tests_output_names_the_failed_tests_and_the_first_ones_message(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "tests" / "test_two.py").write_text(textwrap.dedent("""
        def test_first():
            assert 1 == 2, "the node manager2 did not come back: " + "why " * 100

        def test_second():
            assert False, "only after the first"

        def test_third():
            pass
    """))  # fmt: skip
    (tmp_path / "Makefile").write_text(
        f"quick:\n\ttrue\nbroken:\n\t{sys.executable} -m pytest -q -p no:cacheprovider tests\n"
    )
    done = subprocess.run(["bash", str(ROOT / "tests/harness/test-stages.sh"), "quick", "broken & quick"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    tail = done.stdout[done.stdout.index("make test: the tests that failed:") :].splitlines()
    assert tail[1] == "FAILED tests/test_two.py::test_first"
    assert tail[2].startswith("  AssertionError: the node manager2 did not come back: why why")
    assert all(len(line) <= 160 for line in tail)
    second = tail.index("FAILED tests/test_two.py::test_second")
    assert "why " * 20 in "".join(tail[2:second]).replace("\n", "")  # the first message at length
    assert tail[second + 1] == "  AssertionError: only after the first assert False"
    assert "test_third" not in done.stdout[done.stdout.index("the tests that failed") :]
    assert tail[-2].startswith("make test: a step failed;") and re.search(r" broken \d+ s \(failed\);", tail[-2])
    assert tail[-1].startswith("make test: stages: [quick]")


def test_a_failed_runs_account_begins_with_its_failure_after_its_task():
    out = textwrap.dedent("""
        TASK [Check | the plan] ****
        ok: [manager1] => {
            "msg": "Upgrading the engine, one node at a time: manager1, worker1."
        }
        TASK [Activate | wait until every service runs all its replicas] ****
        FAILED - RETRYING: [worker1 -> manager1]: Activate | wait (3 retries left).
        fatal: [worker1 -> manager1]: FAILED! => {"attempts": 100, "changed": false}
        [WARNING]: a warning
        PLAY RECAP ****
        worker1 : ok=3 changed=1 unreachable=0 failed=1
    """)  # fmt: skip
    run = Run(SimpleNamespace(returncode=2, stdout=out, stderr=""), 1.0)
    lines = run.trouble().splitlines()
    assert lines[0] == ("TASK [Activate | wait until every service runs all its replicas] "
                        'fatal: [worker1 -> manager1]: FAILED! => {"attempts": 100, "changed": false}')  # fmt: skip
    assert lines[1].startswith('TASK [Check | the plan] "msg": "Upgrading')
    assert "PLAY RECAP" in lines[-2] and run.recap["worker1"]["failed"] == 1
