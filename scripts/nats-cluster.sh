#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Starts, stops or shows a local NATS JetStream cluster for trying convd's [nats] transport
# (docs/SCALE.md has the walk-through): N nats-server processes on 127.0.0.1, each with its
# own store folder, routed to each other, with the partition mapping convd needs. Each node's
# configuration is config/nats-server.conf's, with local ports.
#
#   scripts/nats-cluster.sh start  [OPTIONS]   start the nodes, wait until JetStream answers
#   scripts/nats-cluster.sh stop   [OPTIONS]   stop them (SIGTERM; SIGKILL after 10 s)
#   scripts/nats-cluster.sh status [OPTIONS]   which run, and their health
#   scripts/nats-cluster.sh kill N [OPTIONS]   SIGKILL node N (1..): to watch a takeover
#   scripts/nats-cluster.sh restart N [OPTIONS]  start node N again
#
# Options (the same for every command of one cluster):
#   --dir DIR          configurations, store folders, logs and pids (default
#                      ${TMPDIR:-/tmp}/convd-nats)
#   --nodes N          nodes (default 3)
#   --port P           client port of node 1; node k listens on P+k-1 (default 4222)
#   --route-port P     cluster port of node 1 (default 6222)
#   --http-port P      monitoring port of node 1 (default 8222)
#   --prefix P         convd's prefix (default convd)
#   --partitions N     convd's partitions (default 64)
set -eu

cmd=${1:-}
[ $# -gt 0 ] && shift
node_arg=""
case "$cmd" in
kill | restart)
    node_arg=${1:-}
    [ $# -gt 0 ] && shift
    ;;
esac
dir=${TMPDIR:-/tmp}/convd-nats
nodes=3
port=4222
rport=6222
hport=8222
prefix=convd
partitions=64
while [ $# -gt 0 ]; do
    case "$1" in
    --dir) dir=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --route-port) rport=$2; shift 2 ;;
    --http-port) hport=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    *) echo "nats-cluster: unknown option '$1'" >&2; exit 2 ;;
    esac
done

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

command -v nats-server >/dev/null 2>&1 || {
    echo "nats-cluster: nats-server is not installed (apt-get install nats-server, or scripts/install-deps.sh)" >&2
    exit 1
}

# GET http://127.0.0.1:PORT/PATH, the body on stdout (bash's /dev/tcp: no curl needed)
http_get() {
    local p=$1 path=$2
    exec 3<>"/dev/tcp/127.0.0.1/$p" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
    sed -e '1,/^\r\{0,1\}$/d' <&3
    exec 3<&-
}

write_conf() {
    local k=$1 routes="" j
    for j in $(seq 1 "$nodes"); do
        [ "$j" = "$k" ] && continue
        routes="$routes    nats-route://127.0.0.1:$((rport + j - 1))
"
    done
    mkdir -p "$dir/n$k"
    cat >"$dir/n$k.conf" <<EOF
# node $k of a local convd test cluster (scripts/nats-cluster.sh; see config/nats-server.conf)
server_name: n$k
listen: 127.0.0.1:$((port + k - 1))
http: 127.0.0.1:$((hport + k - 1))
jetstream {
  store_dir: "$dir/n$k"
}
cluster {
  name: convd-local
  listen: 127.0.0.1:$((rport + k - 1))
  routes: [
$routes  ]
}
mappings = {
  "$prefix.in.*": "$prefix.part.{{partition($partitions,1)}}.{{wildcard(1)}}"
}
max_payload: 8MB
EOF
}

running() {
    local k=$1
    [ -f "$dir/n$k.pid" ] && kill -0 "$(cat "$dir/n$k.pid")" 2>/dev/null
}

start_node() {
    local k=$1
    if running "$k"; then
        echo "node $k runs already (pid $(cat "$dir/n$k.pid"))"
        return 0
    fi
    write_conf "$k"
    nats-server -c "$dir/n$k.conf" -l "$dir/n$k.log" -P "$dir/n$k.pid" &
    disown
}

wait_ready() {
    local k=$1 i
    for i in $(seq 1 300); do
        if http_get $((hport + k - 1)) /healthz 2>/dev/null | grep -q '"ok"'; then
            return 0
        fi
        sleep 0.1
    done
    echo "nats-cluster: node $k is not healthy after 30 s; see $dir/n$k.log" >&2
    return 1
}

servers_line() {
    local urls="" k
    for k in $(seq 1 "$nodes"); do
        urls="$urls${urls:+,}nats://127.0.0.1:$((port + k - 1))"
    done
    echo "$urls"
}

stop_node() {
    local k=$1 pid i
    running "$k" || return 0
    pid=$(cat "$dir/n$k.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/n$k.pid"
}

case "$cmd" in
start)
    mkdir -p "$dir"
    for k in $(seq 1 "$nodes"); do start_node "$k"; done
    for k in $(seq 1 "$nodes"); do wait_ready "$k"; done
    echo "nats-cluster: $nodes nodes up under $dir (logs n1.log ...)"
    echo "  mapping:  $prefix.in.* -> $prefix.part.{{partition($partitions,1)}}.{{wildcard(1)}}"
    echo "  convd:    [nats NAME] servers = $(servers_line)"
    echo "            prefix = $prefix, partitions = $partitions"
    ;;
stop)
    for k in $(seq 1 "$nodes"); do stop_node "$k"; done
    echo "nats-cluster: stopped (the store folders stay under $dir)"
    ;;
status)
    for k in $(seq 1 "$nodes"); do
        if running "$k"; then
            h=$(http_get $((hport + k - 1)) /healthz 2>/dev/null | tr -d '\r\n' || true)
            echo "node $k: pid $(cat "$dir/n$k.pid"), nats://127.0.0.1:$((port + k - 1)), health $h"
        else
            echo "node $k: not running"
        fi
    done
    ;;
kill)
    [ -n "$node_arg" ] || usage
    if running "$node_arg"; then
        kill -9 "$(cat "$dir/n$node_arg.pid")"
        rm -f "$dir/n$node_arg.pid"
        echo "nats-cluster: node $node_arg killed (SIGKILL)"
    else
        echo "nats-cluster: node $node_arg is not running" >&2
        exit 1
    fi
    ;;
restart)
    [ -n "$node_arg" ] || usage
    start_node "$node_arg"
    wait_ready "$node_arg"
    echo "nats-cluster: node $node_arg up"
    ;;
*)
    usage
    ;;
esac
