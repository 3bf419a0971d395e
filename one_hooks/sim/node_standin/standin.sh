#!/bin/sh
# Stand-in for iscsiadm, multipath and sudo on a simulated node: replays captured real
# outputs with their real exit codes. It exists because this machine has no kernel iSCSI
# initiator, so real sessions cannot be made; see README.md for the scenario format.
# Usage (through the wrappers beside it): standin.sh TOOL ARG...
set -u
here=$(cd "$(dirname "$0")" && pwd)
tool=$1
shift
host=${ONE_HOOKS_NODE:-}
scenario=${ONE_HOOKS_STANDIN_SCENARIO:-}
captures=${ONE_HOOKS_STANDIN_CAPTURES:-$here/captures}

if [ -n "${ONE_HOOKS_STANDIN_LOG:-}" ]; then
    printf '%s\t%s\t%s\n' "$host" "$tool" "$*" >>"$ONE_HOOKS_STANDIN_LOG"
fi

# Which question is asked: session, session-P1, session-P3, node, multipath, sudo.
query=$tool
if [ "$tool" = iscsiadm ]; then
    mode="" level=""
    while [ $# -gt 0 ]; do
        case $1 in
            -m|--mode) mode=${2:-}; shift ;;
            -P|--print) level=${2:-}; shift ;;
        esac
        shift
    done
    query=$mode
    [ "$mode" = session ] && [ -n "$level" ] && query="session-P$level"
fi

# First scenario line naming this host (or *) and this query wins.
capture="" after="" later=""
if [ -n "$scenario" ] && [ -r "$scenario" ]; then
    while read -r l_host l_query l_capture l_after l_later; do
        case $l_host in ''|'#'*) continue ;; esac
        if [ "$l_query" = "$query" ] && { [ "$l_host" = "$host" ] || [ "$l_host" = '*' ]; }; then
            capture=$l_capture after=${l_after:-} later=${l_later:-}
            break
        fi
    done <"$scenario"
fi

# "after N": the first N calls (per host and query) replay capture, later ones the next.
if [ -n "$after" ]; then
    state=${ONE_HOOKS_STANDIN_STATE:-$scenario.state}
    mkdir -p "$state"
    key=$(printf '%s' "$host" | cksum | cut -d' ' -f1)
    count=$(cat "$state/$key-$query" 2>/dev/null || echo 0)
    count=$((count + 1))
    echo "$count" >"$state/$key-$query"
    [ "$count" -gt "$after" ] && capture=$later
fi

if [ -z "$capture" ]; then
    case $query in
        session*) capture=no-sessions ;;
        node) capture=node-none ;;
        multipath) capture=multipath-none ;;
        sudo) capture="" ;;
        *) echo "iscsiadm: stand-in has no answer for: $query" >&2; exit 1 ;;
    esac
fi

rc=0
if [ -n "$capture" ]; then
    case $capture in /*) base=$capture ;; *) base=$captures/$capture ;; esac
    if [ ! -e "$base.out" ] && [ ! -e "$base.err" ]; then
        echo "$tool stand-in: no capture $base.out" >&2
        exit 99
    fi
    [ -e "$base.out" ] && cat "$base.out"
    [ -e "$base.err" ] && cat "$base.err" >&2
    [ -e "$base.rc" ] && rc=$(cat "$base.rc")
fi

if [ "$tool" = sudo ] && [ "$rc" -eq 0 ]; then
    # Allowed: drop sudo's own options and run the command, as sudo would.
    while [ $# -gt 0 ]; do
        case $1 in
            -u|-g) shift 2 ;;
            --) shift; break ;;
            -*) shift ;;
            *) break ;;
        esac
    done
    exec "$@"
fi
exit "$rc"
