#!/usr/bin/env bash
# Installs the real agent CLIs that tests/test_agents_real.py runs (without credentials):
#   - claude, codex, gemini, copilot: the exact npm versions of package.json/package-lock.json
#     beside this script, into tests/agent_clis/node_modules (binaries in node_modules/.bin);
#   - aider: aider-chat at the exact version of pyproject.toml's `agent-clis` extra, into its
#     own virtual environment tests/agent_clis/aider-venv (aider pins ~300 dependencies
#     exactly, which would clash with the test environment's), binary in aider-venv/bin.
# Needs node/npm and a Python that aider-chat supports (3.10-3.12; AIDER_PYTHON=/path/python
# chooses one). Run again, it reinstalls only what is missing or of another version.
# `install.sh --aider-requirement` prints the aider-chat requirement it would install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# The pin, read from pyproject.toml ([project.optional-dependencies] agent-clis); a test
# (tests/test_agents_real.py) checks that this reads what tomllib reads.
requirement="$(sed -n 's/^[[:space:]]*"\(aider-chat==[^"]*\)".*$/\1/p' "$root/pyproject.toml")"
if [ -z "$requirement" ] || [ "$(printf '%s\n' "$requirement" | wc -l)" -ne 1 ]; then
    echo "install.sh: no single \"aider-chat==VERSION\" line in $root/pyproject.toml" >&2
    exit 1
fi
if [ "${1:-}" = "--aider-requirement" ]; then
    printf '%s\n' "$requirement"
    exit 0
fi
version="${requirement#aider-chat==}"

npm ci --prefix "$here" --no-audit --no-fund

venv="$here/aider-venv"
if [ -x "$venv/bin/python" ] && [ -x "$venv/bin/aider" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null)" = "$version" ]; then
    echo "install.sh: $requirement is already in $venv"
    exit 0
fi
python=""
for candidate in ${AIDER_PYTHON:-} python3 python3.12 python3.11 python3.10; do
    # aider-chat's Requires-Python: >=3.10,<3.13
    if "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 13))' \
        >/dev/null 2>&1; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "install.sh: $requirement needs Python 3.10-3.12; none found (set AIDER_PYTHON)" >&2
    exit 1
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
"$venv/bin/aider" --version
