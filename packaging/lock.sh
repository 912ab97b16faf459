#!/usr/bin/env bash
# Refresh packaging/requirements.lock (PyInstaller and its dependencies, with hashes), held to the
# runtime lock so the build venv never disagrees with requirements.lock on a shared version.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q uv==0.13.9
"$tools/bin/uv" pip compile packaging/requirements.in -c requirements.lock --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_36 --find-links /opt/wheels \
  --custom-compile-command "bash packaging/lock.sh" --quiet -o packaging/requirements.lock
