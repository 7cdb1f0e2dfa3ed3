#!/usr/bin/env bash
# Search every node of a cluster at once: `kubectl exec` into each nsview DaemonSet pod and run
# `grep -r` under its /mnt/nsview (every container of that node); each output line is prefixed
# with the node's name.
#
#   deploy/kubernetes/grep-all-nodes.sh [-n NAMESPACE] [-l SELECTOR] [-p PATH-GLOB]... -- GREP-ARGS...
#   deploy/kubernetes/grep-all-nodes.sh -p '*/etc/' -- -s password
#
# -p: where to search, relative to /mnt/nsview on each node, with shell globs expanded on the
# node (default: everything). GREP-ARGS go to grep unchanged. Nodes are searched in parallel;
# the exit status is 0 if any node matched, 1 if none did, 2 if a node could not be searched.
set -uo pipefail
ns=kube-system
selector=app.kubernetes.io/name=nsview
globs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ns=$2; shift 2 ;;
    -l) selector=$2; shift 2 ;;
    -p) globs+=("$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [-n NAMESPACE] [-l SELECTOR] [-p PATH-GLOB]... -- GREP-ARGS..." >&2; exit 2; }
[ "${#globs[@]}" -gt 0 ] || globs=('*')
for g in "${globs[@]}"; do
  # Globs reach the remote shell unquoted (so that they expand there): plain characters only.
  [[ $g =~ ^[A-Za-z0-9_./*?@%+=:,-]+$ ]] || { echo "$0: -p $g: only letters, digits, _./*?@%+=:,- allowed" >&2; exit 2; }
done

remote="cd /mnt/nsview && grep -r -H $(printf '%q ' "$@")-- ${globs[*]}"

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
