#!/bin/sh
# install.sh: one command for front-ends without pip habits. It exists only to
# make a virtualenv, pip-install this directory into it, and hand over to
# one-hooks-install (all logic lives there, in Python). POSIX sh, no bashisms.
set -eu

VENV=/usr/lib/one/one-hooks
PYTHON=${PYTHON:-python3}

usage() {
    cat <<'EOF'
Usage: install.sh [--venv DIR] [--python PY] [one-hooks-install options...]

Installs one-hooks from the directory holding this script into its own
virtualenv, then runs one-hooks-install with the remaining options.

  --venv DIR      virtualenv to create or upgrade (default /usr/lib/one/one-hooks)
  --python PY     interpreter to build it with, Python >= 3.9 (default python3,
                  or $PYTHON)
  -h, --help      this help; one-hooks-install's own: install.sh -- --help

one-hooks-install options (see its --help): --remotes DIR, --root DIR,
--config PATH, --cpu-host[=native|wrapper], --dry-run, --check, --uninstall,
--sync. Everything after "--" goes to one-hooks-install untouched. With
--dry-run nothing is created either: no virtualenv, no pip run; the
installer's dry run runs from this directory.

pip honours its usual environment (PIP_INDEX_URL, PIP_FIND_LINKS, ...) for
front-ends behind a proxy or without Internet access.
Run as root (or oneadmin with write access to the remotes directory).
EOF
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 2
}

# Pick out our own options; keep every other argument, in order, for
# one-hooks-install (rotating "$@" keeps spaces and quotes intact without eval).
n=$#
passthrough=no
dry_run=no
while [ "$n" -gt 0 ]; do
    arg=$1
    shift
    n=$((n - 1))
    [ "$arg" = --dry-run ] && dry_run=yes
    if [ "$passthrough" = yes ]; then
        set -- "$@" "$arg"
        continue
    fi
    case $arg in
        -h|--help) usage; exit 0 ;;
        --venv|--python)
            [ "$n" -gt 0 ] || die "$arg needs a value"
            value=$1
            shift
            n=$((n - 1))
            if [ "$arg" = --venv ]; then VENV=$value; else PYTHON=$value; fi
            ;;
        --venv=*) VENV=${arg#--venv=} ;;
        --python=*) PYTHON=${arg#--python=} ;;
        --) passthrough=yes ;;
        *) set -- "$@" "$arg" ;;
    esac
done

[ -n "$VENV" ] || die "--venv must not be empty"
SRC=$(cd "$(dirname "$0")" && pwd)
[ -f "$SRC/setup.cfg" ] || die "$SRC does not look like the one-hooks source (no setup.cfg)"

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install python3 (>= 3.9)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "$PYTHON is older than Python 3.9"

if [ "$dry_run" = yes ]; then
    # Nothing is created: one-hooks-install's own dry run runs from this checkout,
    # with the interpreter that has its libraries (the existing venv's, else PYTHON),
    # told which interpreter the shims would run.
    if [ -x "$VENV/bin/python" ]; then
        printf 'install.sh: would upgrade one-hooks in %s from %s (dry run: pip not run)\n' "$VENV" "$SRC"
        preview=$VENV/bin/python
    else
        printf 'install.sh: would create the virtualenv %s and install one-hooks from %s into it (dry run: nothing created)\n' \
            "$VENV" "$SRC"
        preview=$PYTHON
    fi
    if PYTHONPATH=$SRC "$preview" -c 'import configobj, lxml, one_hooks.install.main' >/dev/null 2>&1; then
        PYTHONPATH=$SRC exec "$preview" -m one_hooks.install --python "$VENV/bin/python" "$@"
    fi
    printf 'install.sh: then one-hooks-install %s; its steps cannot be shown before the install (%s lacks configobj or lxml)\n' \
        "$*" "$preview"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    printf 'install.sh: creating virtualenv %s\n' "$VENV"
    "$PYTHON" -m venv "$VENV" \
        || die "cannot create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
fi
printf 'install.sh: installing one-hooks from %s into %s\n' "$SRC" "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SRC" \
    || die "pip could not install $SRC into $VENV (see the messages above)"

exec "$VENV/bin/one-hooks-install" "$@"
