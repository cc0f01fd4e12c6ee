# Sourced by bench/compare and bench/alternate: what they need installed and built, and the
# servers they run one at a time, each on fresh state in a directory of its own.
#
# The caller sets `scratch` (the SwiftPM build directory) and `work` (a temporary directory), and
# calls stop_server on exit. Afterwards `agentd_bin` and `bench_bin` name the release builds;
# start_server sets `server_pid` and `server_socket`.

server_pid=""
server_socket=""

# libuv and SQLite headers (scripts/setup), redis-server and beanstalkd, from apt when missing.
install_missing() {
    scripts/setup
    local missing=() sudo=""
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v beanstalkd >/dev/null 2>&1 || missing+=(beanstalkd)
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "installing: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# agentd and bench in release, in $scratch, apart from a development .build.
build_release() {
    echo "building agentd and bench (release, $scratch)"
    for product in agentd bench; do
        swift build -c release --scratch-path "$scratch" --product "$product" >"$work/build-$product.log" 2>&1 || {
            cat "$work/build-$product.log" >&2
            exit 1
        }
        tail -1 "$work/build-$product.log"
    done
    agentd_bin="$PWD/$scratch/release/agentd"
    bench_bin="$PWD/$scratch/release/bench"
}

stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}

wait_for_socket() {
    for _ in $(seq 1 1000); do
        [ -S "$1" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || { echo "$(basename "$0"): server exited; log:" >&2; cat "$2" >&2; exit 1; }
        sleep 0.01
    done
    echo "$(basename "$0"): no socket at $1 after 10 s" >&2
    exit 1
}

# start_server NAME [DIR] [AGENTD_BINARY]: NAME is agentd, agentd-full, redis-mem, redis-aof,
# redis-always, beanstalkd or beanstalkd-f0; DIR defaults to $work/NAME; AGENTD_BINARY to
# $agentd_bin (another build of agentd, to compare two).
start_server() {
    local name=$1 dir=${2:-$work/$1} binary=${3:-$agentd_bin}
    mkdir -p "$dir"
    case "$name" in
        agentd|agentd-full)
            local sync=normal
            [ "$name" = agentd-full ] && sync=full
            server_socket="$dir/agentd.sock"
            env -u AGENTD_NODE_TIMEOUT_SECS -u AGENTD_CONTEXT_EVENT_LIMIT -u AGENTD_SOCKET_PATH \
                -u AGENTD_DATABASE_URL AGENTD_HOME="$dir" \
                "$binary" serve --socket "$server_socket" --db "$dir/state.db" --sync "$sync" \
                >"$dir/log" 2>&1 &
            ;;
        redis-mem|redis-aof|redis-always)
            local persistence=(--save '' --appendonly no)
            [ "$name" = redis-aof ] && persistence=(--save '' --appendonly yes --appendfsync everysec)
            [ "$name" = redis-always ] && persistence=(--save '' --appendonly yes --appendfsync always)
            server_socket="$dir/redis.sock"
            redis-server --port 0 --unixsocket "$server_socket" --unixsocketperm 700 --dir "$dir" \
                --daemonize no --logfile "$dir/log" "${persistence[@]}" >/dev/null 2>&1 &
            ;;
        beanstalkd|beanstalkd-f0)
            local fsync=()
            [ "$name" = beanstalkd-f0 ] && fsync=(-f 0)
            server_socket="$dir/beanstalkd.sock"
            mkdir -p "$dir/binlog"
            beanstalkd -l "unix:$server_socket" -b "$dir/binlog" "${fsync[@]}" >"$dir/log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_for_socket "$server_socket" "$dir/log"
}

# The bench driver that speaks a server's protocol.
target_of() {
    case "$1" in agentd*) echo agentd ;; redis*) echo redis ;; beanstalkd*) echo beanstalkd ;; esac
}
