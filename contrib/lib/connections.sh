# Sourced by contrib/arm64/ci.sh and contrib/windows/ci.sh: a free loopback port, and five
# real connections held open on it for the tcp monitor to count. The caller defines fail, and
# the arrays pids and groups its cleanup kills (groups by process group).

# A port nothing on this machine uses as source or destination.
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 20000))
        if ! ss -Htan "( sport = :$port or dport = :$port )" | grep -q .; then
            echo "$port"
            return
        fi
    done
    fail "no free port found"
}

# Five established connections to PORT (three over IPv4, two over IPv6), held until killed.
hold_five_connections() {
    local port=$1 held=0
    # Each listener forks a socat per connection that reads it into /dev/null until the
    # client closes; setsid makes the listener a process group leader, so cleanup ends its
    # children too.
    for listen in "TCP4-LISTEN:$port,bind=127.0.0.1" "TCP6-LISTEN:$port,bind=[::1],ipv6only=1"; do
        setsid socat -u "$listen,reuseaddr,fork" OPEN:/dev/null,wronly </dev/null >/dev/null 2>&1 &
        groups+=($!)
    done
    sleep 0.5
    for address in TCP4:127.0.0.1 TCP4:127.0.0.1 TCP4:127.0.0.1 'TCP6:[::1]' 'TCP6:[::1]'; do
        # Each client is a socat holding its connection open, sending nothing, until killed.
        socat -u OPEN:/dev/null,ignoreeof "$address:$port" </dev/null >/dev/null 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 50); do
        held=$(ss -Htn state established "( sport = :$port )" | wc -l)
        ((held >= 5)) && break
        sleep 0.1
    done
    ((held == 5)) || fail "expected 5 established connections on port $port, ss shows $held"
}
