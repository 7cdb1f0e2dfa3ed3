#!/usr/bin/env bash
# Search every node of a cluster at once: `kubectl exec` into each nsview DaemonSet pod and run
# `grep -r` under its /mnt/nsview (every container of that node); each output line is prefixed
# with the node's name.
#
#   deploy/kubernetes/grep-all-nodes.sh [-n NAMESPACE] [-l SELECTOR] [--] GREP-ARGS... PATH-UNDER-VIEW...
#   deploy/kubernetes/grep-all-nodes.sh -- -s 'password' '*/etc/'
#
# Paths are relative to /mnt/nsview on each node and may use shell globs (expanded on the node).
# Nodes are searched in parallel; the exit status is 0 if any node matched, 1 if none did, 2 if
# a node could not be searched (as grep does).
set -uo pipefail
ns=kube-system
selector=app.kubernetes.io/name=nsview
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ns=$2; shift 2 ;;
    -l) selector=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: $0 [-n NAMESPACE] [-l SELECTOR] [--] GREP-ARGS... PATH..." >&2; exit 2; }

# Quote every argument for the remote shell; paths stay globbable (relative to /mnt/nsview).
args=$(printf '%q ' "$@")
remote="cd /mnt/nsview && grep -r -H $args"

pods=$(kubectl get pods -n "$ns" -l "$selector" --field-selector=status.phase=Running \
  -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{"\n"}{end}') || exit 2
[ -n "$pods" ] || { echo "$0: no running pods match $selector in namespace $ns" >&2; exit 2; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
while read -r pod node; do
  [ -n "$pod" ] || continue
  (
    kubectl exec -n "$ns" "$pod" -c nsview -- sh -c "$remote" 2>"$tmp/$node.err" | sed "s|^|$node: |"
    echo "${PIPESTATUS[0]}" >"$tmp/$node.rc"
  ) &
done <<<"$pods"
wait

status=1
for rc in "$tmp"/*.rc; do
  node=$(basename "$rc" .rc)
  sed "s|^|$node: |" "$tmp/$node.err" >&2
  case "$(cat "$rc")" in
    0) [ "$status" = 2 ] || status=0 ;;
    1) ;;
    *) status=2 ;;
  esac
done
exit "$status"
