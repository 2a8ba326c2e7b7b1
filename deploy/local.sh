#!/usr/bin/env bash
# The scale-out topology on one machine, from Debian's packages: PostgreSQL, Redis, N app
# replicas and nginx in front, all on 127.0.0.1, all kept in $COZY_CLUSTER_DIR (./.cluster).
#
#   deploy/local.sh up N      start (or grow to) N replicas; prints "URL http://127.0.0.1:PORT" last
#   deploy/local.sh restart   rolling restart: SIGTERM each replica in turn, start it again
#   deploy/local.sh down      stop everything
#
# Replicas get the caller's OPENAI_*, GROQ_*, ELEVENLABS_* and COZY_* variables; each has its
# own COZY_DATA_DIR (models and tool state) and shares the database, Redis and COZY_SECRET.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${COZY_CLUSTER_DIR:-$ROOT/.cluster}
PY=${COZY_PYTHON:-$ROOT/.venv/bin/python}
READY_TIMEOUT_S=${COZY_CLUSTER_READY_TIMEOUT_S:-600}

say() { echo "local.sh: $*" >&2; }
die() { say "$*"; exit 1; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install_missing() {
    local missing=""
    [ -n "$(pg_bin)" ] || missing="$missing postgresql"
    command -v redis-server >/dev/null || missing="$missing redis-server"
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
    [ -z "$missing" ] && return
    [ "$(id -u)" = 0 ] || die "needs$missing: sudo apt-get install$missing"
    say "installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    # Debian's packages start their own services on the default ports; ours run beside them.
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))'; }

# A value kept in $DIR/state, made once (ports and passwords survive "up" being run again).
state() {
    local name=$1 make=$2 file="$DIR/state/$1"
    [ -s "$file" ] || { umask 077; $make > "$file"; }
    cat "$file"
}

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
    local bin port password data
    bin=$(pg_bin); port=$(state pg_port free_port); password=$(state pg_password secret)
    data=$(cat "$DIR/state/pg_data" 2>/dev/null || true)
    if [ -z "$data" ]; then
        # PostgreSQL will not run as root; its folder must be reachable by the postgres user.
        data=$DIR/postgres
        if [ "$(id -u)" = 0 ]; then
            data=$(mktemp -d /tmp/cozy-cluster-pg.XXXXXX)
            chown postgres: "$data"
        fi
        echo "$data" > "$DIR/state/pg_data"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        local pwfile="$data.pw"
        (umask 077; echo "$password" > "$pwfile"); [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
        as_postgres "$bin/initdb" -D "$data" -U cozy --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 >/dev/null
        rm -f "$pwfile"
    fi
    if ! as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o \
            "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c max_connections=200" \
            >/dev/null
    fi
    if [ -z "$(PGPASSWORD=$password psql -h 127.0.0.1 -p "$port" -U cozy -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'cozy'")" ]; then
        PGPASSWORD=$password psql -h 127.0.0.1 -p "$port" -U cozy -d postgres -qc "CREATE DATABASE cozy" >/dev/null
    fi
    echo "postgresql://cozy:$password@127.0.0.1:$port/cozy"
}

start_redis() {
    local port password
    port=$(state redis_port free_port); password=$(state redis_password secret)
    if ! [ -f "$DIR/redis.pid" ] || ! kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
        # The password goes in a config file, not the command line, where `ps` would show it.
        (umask 077; printf 'bind 127.0.0.1\nport %s\nrequirepass %s\nsave ""\nappendonly no\ndir %s\n' \
            "$port" "$password" "$DIR" > "$DIR/redis.conf")
        redis-server "$DIR/redis.conf" --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    fi
    echo "redis://:$password@127.0.0.1:$port/0"
}

replica_alive() { [ -f "$DIR/replica-$1.pid" ] && kill -0 "$(cat "$DIR/replica-$1.pid")" 2>/dev/null; }

start_replica() {
    local i=$1 port
    port=$(state "replica-$i.port" free_port)
    replica_alive "$i" && return
    mkdir -p "$DIR/replica-$i"
    # The models stay where `make setup` unpacked them, unless the caller says otherwise.
    COZY_DATA_DIR="$DIR/replica-$i" COZY_HOST=127.0.0.1 COZY_PORT="$port" COZY_REPLICA="replica-$i" \
        COZY_REPLICA_URL="http://127.0.0.1:$port" \
        COZY_DB_URL="$DB_URL" COZY_REDIS_URL="$REDIS_URL" COZY_SECRET="$APP_SECRET" \
        COZY_MODELS_DIR="${COZY_MODELS_DIR:-$ROOT/data/models}" \
        nohup "$PY" "$ROOT/app.py" >> "$DIR/replica-$i.log" 2>&1 < /dev/null &
    echo $! > "$DIR/replica-$i.pid"
}

wait_healthy() {
    local i=$1 port; port=$(cat "$DIR/state/replica-$i.port")
    "$PY" - "$port" "$READY_TIMEOUT_S" "$(cat "$DIR/replica-$i.pid")" <<'EOF' || die "replica-$i is not healthy; see $DIR/replica-$i.log"
import os, sys, time, urllib.request
port, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
}

stop_replica() {  # SIGTERM: the replica drains (finishes turns in flight), flushes, exits
    local i=$1 pid
    replica_alive "$i" || { rm -f "$DIR/replica-$i.pid"; return; }
    pid=$(cat "$DIR/replica-$i.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { say "replica-$i did not stop in 60 s; killing it"; kill -KILL "$pid"; }
    rm -f "$DIR/replica-$i.pid"
}

replicas() { cat "$DIR/state/replicas" 2>/dev/null || echo 0; }

write_nginx() {
    local n=$1 port servers="" user=""
    port=$(state nginx_port free_port)
    for i in $(seq 1 "$n"); do
        servers="$servers        server 127.0.0.1:$(cat "$DIR/state/replica-$i.port") max_fails=0;\n"
    done
    [ "$(id -u)" = 0 ] && user="user www-data;"
    mkdir -p "$DIR/nginx-temp"
    sed -e "s|@DIR@|$DIR|g" -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@USER@|$user|" \
        -e "s|@SERVERS@|${servers%\\n}|" "$ROOT/deploy/nginx.conf.template" > "$DIR/nginx.conf"
    if [ -f "$DIR/nginx.pid" ] && kill -0 "$(cat "$DIR/nginx.pid")" 2>/dev/null; then
        nginx -p "$DIR" -c "$DIR/nginx.conf" -s reload 2>/dev/null
    else
        nginx -p "$DIR" -c "$DIR/nginx.conf"
    fi
}

shared_env() {
    DB_URL=${COZY_DB_URL:-$(start_postgres)}
    REDIS_URL=${COZY_REDIS_URL:-$(start_redis)}
    APP_SECRET=${COZY_SECRET:-$(state app_secret secret)}
}

up() {
    local n=${1:-}
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "usage: deploy/local.sh up N   (N replicas, 1 or more)"
    [ -x "$PY" ] || die "$PY not found: run 'make setup' first (or set COZY_PYTHON)"
    install_missing
    mkdir -p "$DIR/state"; chmod 700 "$DIR"
    shared_env
    local old; old=$(replicas)
    for i in $(seq $((n + 1)) "$old"); do stop_replica "$i"; done
    for i in $(seq 1 "$n"); do start_replica "$i"; done
    for i in $(seq 1 "$n"); do wait_healthy "$i"; say "replica-$i healthy"; done
    echo "$n" > "$DIR/state/replicas"
    write_nginx "$n"
    echo "URL http://127.0.0.1:$(cat "$DIR/state/nginx_port")"
}

restart() {
    local n; n=$(replicas)
    [ "$n" -gt 0 ] || die "no cluster in $DIR: run 'deploy/local.sh up N' first"
    shared_env
    for i in $(seq 1 "$n"); do
        stop_replica "$i"; start_replica "$i"; wait_healthy "$i"; say "replica-$i restarted"
    done
}

down() {
    [ -d "$DIR/state" ] || return 0
    for i in $(seq 1 "$(replicas)"); do stop_replica "$i"; done
    echo 0 > "$DIR/state/replicas"
    if [ -f "$DIR/nginx.pid" ] && kill -0 "$(cat "$DIR/nginx.pid")" 2>/dev/null; then
        nginx -p "$DIR" -c "$DIR/nginx.conf" -s quit 2>/dev/null
    fi
    if [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then kill -TERM "$(cat "$DIR/redis.pid")"; fi
    local data; data=$(cat "$DIR/state/pg_data" 2>/dev/null || true)
    if [ -n "$data" ] && [ -f "$data/PG_VERSION" ]; then
        as_postgres "$(pg_bin)/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    say "stopped (data kept in $DIR; delete it to start afresh)"
}

case "${1:-}" in
    up) up "${2:-}" ;;
    restart) restart ;;
    down) down ;;
    *) die "usage: deploy/local.sh up N | restart | down" ;;
esac
