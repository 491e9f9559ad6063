# Shared by scripts/start and scripts/test: a virtualenv with the project's pins.
# Usage: source scripts/bootstrap.sh REQUIREMENTS_FILE

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "jeeves-runner needs Python 3.11 or newer as '$PYTHON' (set PYTHON=...)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "Cannot create a virtualenv: install python3-venv (apt-get install python3-venv)." >&2
      exit 1
    fi
  fi
fi
# Installed again only when a requirements file changed: a restart of the runner should
# not wait for pip (every second of it is fires missed).
stamp=".venv/.installed-$(basename "$1")"
wanted=$(cat requirements*.txt "$1" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"
  echo "$wanted" > "$stamp"
fi
