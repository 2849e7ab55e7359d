#!/usr/bin/env bash
# Install the named Debian packages that are not installed yet:
#   scripts/apt-install.sh chromium python3-venv
# Runs apt-get update once, and only when something is missing; uses sudo when not root.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
[ "$(id -u)" = "0" ] || as_root=(sudo)
echo "installing Debian packages: ${missing[*]}" >&2
"${as_root[@]}" apt-get update -q >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
