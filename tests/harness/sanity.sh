#!/usr/bin/env bash
# `make lint`'s ansible-test sanity, offline. ansible-test runs on a collection found at
# .../ansible_collections/<namespace>/<name>: the tree's files (tracked, and new ones not ignored;
# never a vault or a password file) are copied to such a path in a temporary directory.
# Each sanity test installs its tools into a virtual environment of its own, bootstrapping pip
# there with get-pip.py, which it downloads from a host that is not a package registry. Where no
# copy of that script is cached, a stand-in is: pip from the interpreter's own ensurepip, then
# `pip install` of what ansible-test asks for, from the package index pip is configured with.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
collection=$work/ansible_collections/shopstream/swarm
mkdir -p "$collection"
git -C "$root" ls-files -co --exclude-standard -z | (cd "$root" && tar --null -cf - -T -) | tar -xf - -C "$collection"

pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',*$/\1/p" \
  "$(python3 -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)
get_pip=${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ -n "$pip_version" ] && [ ! -f "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip" <<'PY'
"""Offline stand-in for get-pip.py (written by shopstream.swarm's tests/harness/sanity.sh): pip
from the interpreter's own ensurepip, then `pip install` of the arguments."""
import ensurepip
import os
import runpy
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
environ = dict(os.environ)
ensurepip.bootstrap()  # it turns pip's configuration off for its own run: put it back
os.environ.clear()
os.environ.update(environ)
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY
fi

cd "$collection"
ansible-test sanity --local --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"
