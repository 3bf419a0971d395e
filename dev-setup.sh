#!/bin/sh
# Sets up a development/test machine (Debian 12, as root): the Debian packages the
# tests use (real sshd, iscsiadm, QEMU, libvirt, shellcheck), then a virtualenv in
# .venv with one-hooks installed (editable) and the test tools. Idempotent: a second
# run installs nothing new. Production front-ends use install.sh instead.
set -eu
cd "$(dirname "$0")"

missing=""
for pkg in $(grep -v '^#' .ci/apt-packages.txt) python3-venv python3-pip; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev-setup.sh: these Debian packages are missing:$missing (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The account OpenNebula's packages create: the installer gives it the files it
# installs when run as root, and the tests check that ownership.
if [ "$(id -u)" -eq 0 ] && ! id oneadmin >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/one --no-create-home --shell /bin/sh oneadmin
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e . -r requirements-test.txt
echo "dev-setup.sh: ready (.venv/bin/one-hooks, .venv/bin/python -m pytest)"
