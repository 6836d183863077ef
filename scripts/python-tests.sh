#!/usr/bin/env bash
# The Python package's check, as on a fresh machine: a new virtual environment, the package
# built and installed by pip (maturin comes from PyPI as its build backend), pytest, httpx and
# requests from PyPI, then the suite in bindings/python/tests (which starts the Node test
# servers itself, installing them with `npm ci` when needed). Fails on any failure, and when
# pytest finds no tests at all.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
python="$work/venv/bin/python"

echo "building and installing the package (release build of the Rust core)"
started=$SECONDS
"$python" -m pip install --quiet --disable-pip-version-check ./bindings/python
echo "built and installed in $((SECONDS - started)) s"
"$python" -m pip install --quiet --disable-pip-version-check pytest httpx requests

status=0
"$python" -m pytest bindings/python/tests -p no:cacheprovider -ra "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
