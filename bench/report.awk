# Turns the RESULT lines of bench/compare into one table, the ratio lines and the issue's targets.
# Input: RESULT key=value ... lines (other lines are ignored).

function field(name) { return (name in f) ? f[name] : "na" }
function ratio(a, b) { return (b + 0 > 0) ? sprintf("%.2f", a / b) : "na" }
function verdict(ok) { return ok ? "holds" : "MISSED" }

/^RESULT / {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
    s = f["scenario"]
    if (s == "locks" || s == "leases" || s == "swarm") {
        variant = (s == "locks") ? f["keys"] : (s == "leases" ? f["queue"] : "-")
        key = s SUBSEP variant SUBSEP f["c"] SUBSEP f["P"] SUBSEP f["target"]
        if (!(key in ops)) order[++rows] = key
        ops[key] = f["ops"]; p50[key] = f["p50"]; p99[key] = f["p99"]; p999[key] = f["p999"]
        mx[key] = f["max"]; cpu[key] = f["cpu_us_per_op"]; rss[key] = f["rss_kb"]; errs[key] = f["errors"]
    } else if (s == "wait") {
        waits[++nwait] = sprintf("%-6s %8s %9s %10s %10s %10s %10s", f["kind"], f["waiters"], f["handoffs"], f["p50"], f["p99"], f["p999"], f["max"])
        waitp99[f["kind"]] = f["p99"]
    } else if (s == "dag-scale") {
        dags[++ndag] = sprintf("%-6s %9s %8s %10s %10s %10s %9s %10s %11s", f["shape"], f["nodes"], f["build_s"], f["cycle_p50"], f["cycle_mean"], f["cycle_p99"], f["rss_b_per_node"], f["restart_s"], f["restart_rss_b_per_node"])
        shape = f["shape"]; n = f["nodes"] + 0
        if (!(shape in minN) || n < minN[shape]) { minN[shape] = n; minP50[shape] = f["cycle_p50"] }
        if (!(shape in maxN) || n > maxN[shape]) { maxN[shape] = n; maxP50[shape] = f["cycle_p50"]; maxRSS[shape] = f["rss_b_per_node"]; maxRestart[shape] = f["restart_s"] }
        if (!(shape in seenShape)) { seenShape[shape] = 1; shapes[++nshape] = shape }
    }
}

END {
    printf "%-8s %-15s %3s %3s  %-13s %9s %9s %9s %9s %9s %8s %8s %6s\n", "scenario", "variant", "c", "P", "target", "ops/s", "p50 us", "p99 us", "p99.9 us", "max us", "cpu/op", "rss MiB", "errors"
    for (r = 1; r <= rows; r++) {
        key = order[r]; split(key, k, SUBSEP)
        printf "%-8s %-15s %3s %3s  %-13s %9s %9s %9s %9s %9s %8s %8s %6s\n", k[1], k[2], k[3], k[4], k[5], ops[key], p50[key], p99[key], p999[key], mx[key], cpu[key], (rss[key] == "na" ? "na" : sprintf("%.1f", rss[key] / 1024)), errs[key]
    }
    print "(latencies in microseconds per request; cpu/op: the server's CPU microseconds per request)"
    if (nwait > 0) {
        print ""
        printf "%-6s %8s %9s %10s %10s %10s %10s\n", "wait", "waiters", "handoffs", "p50 us", "p99 us", "p99.9 us", "max us"
        for (i = 1; i <= nwait; i++) print waits[i]
    }
    if (ndag > 0) {
        print ""
        printf "%-6s %9s %8s %10s %10s %10s %9s %10s %11s\n", "dag", "nodes", "build s", "a+c p50us", "a+c mean", "a+c p99", "RSS B/nd", "restart s", "RSS B/nd rl"
        for (i = 1; i <= ndag; i++) print dags[i]
    }

    print ""
    for (r = 1; r <= rows; r++) {
        key = order[r]; split(key, k, SUBSEP)
        if (k[5] != "agentd") continue
        base = k[1] SUBSEP k[2] SUBSEP k[3] SUBSEP k[4] SUBSEP
        label = k[1] (k[1] == "locks" && k[2] != "distinct" ? " " k[2] : "") " c=" k[3] " P=" k[4] ": "
        if (k[1] == "locks" && ((base "redis-aof") in ops))
            print label "agentd/redis-aof = " ratio(ops[key], ops[base "redis-aof"]) ", agentd/redis-mem = " ratio(ops[key], ops[base "redis-mem"])
        if (k[1] == "leases" && ((base "beanstalkd") in ops))
            print label "agentd/beanstalkd = " ratio(ops[key], ops[base "beanstalkd"])
    }
    full_locks = "locks" SUBSEP "distinct" SUBSEP "64" SUBSEP "1" SUBSEP
    full_leases = "leases" SUBSEP "per-connection" SUBSEP "64" SUBSEP "1" SUBSEP
    if ((full_locks "agentd-full") in ops)
        print "locks c=64 P=1, every write on disk: agentd-full/redis-always = " ratio(ops[full_locks "agentd-full"], ops[full_locks "redis-always"])
    if ((full_leases "agentd-full") in ops)
        print "leases c=64 P=1, every write on disk: agentd-full/beanstalkd-f0 = " ratio(ops[full_leases "agentd-full"], ops[full_leases "beanstalkd-f0"])
    for (i = 1; i <= nshape; i++) {
        shape = shapes[i]
        if (maxN[shape] > minN[shape])
            print "dag-scale " shape ": acquire+complete p50 at " maxN[shape] " / at " minN[shape] " nodes = " ratio(maxP50[shape], minP50[shape])
    }

    print ""
    print "targets:"
    l64 = full_locks "agentd"
    if ((l64 in ops) && ((full_locks "redis-aof") in ops)) {
        a = ratio(ops[l64], ops[full_locks "redis-aof"]); m = ratio(ops[l64], ops[full_locks "redis-mem"])
        print "  locks c=64 P=1 agentd >= 1.0x redis-aof: " a "  " verdict(a >= 1.0)
        print "  locks c=64 P=1 agentd >= 0.9x redis-mem: " m "  " verdict(m >= 0.9)
        print "  locks c=64 P=1 agentd p99 <= 1000 us: " p99[l64] "  " verdict(p99[l64] + 0 <= 1000)
    }
    if ((full_locks "agentd-full") in ops) {
        a = ratio(ops[full_locks "agentd-full"], ops[full_locks "redis-always"])
        print "  locks c=64 P=1 agentd --sync full >= 1.5x redis appendfsync always: " a "  " verdict(a >= 1.5)
    }
    for (p = 1; p <= 16; p += 15) {
        key = "leases" SUBSEP "per-connection" SUBSEP "64" SUBSEP p SUBSEP
        if (((key "agentd") in ops) && ((key "beanstalkd") in ops)) {
            a = ratio(ops[key "agentd"], ops[key "beanstalkd"])
            print "  leases c=64 P=" p " agentd >= 1.0x beanstalkd: " a "  " verdict(a >= 1.0)
        }
    }
    for (i = 1; i <= nshape; i++) {
        shape = shapes[i]
        if (maxN[shape] > minN[shape]) {
            a = ratio(maxP50[shape], minP50[shape])
            print "  dag-scale " shape " acquire+complete at " maxN[shape] " within 1.5x of " minN[shape] ": " a "  " verdict(a <= 1.5) (maxN[shape] < 1000000 ? " (not the 1M of the target)" : "")
        }
        print "  dag-scale " shape " RSS <= 300 B/node at " maxN[shape] " nodes: " maxRSS[shape] "  " verdict(maxRSS[shape] != "na" && maxRSS[shape] + 0 <= 300) (maxN[shape] < 1000000 ? " (not the 1M of the target)" : "")
        if (maxRestart[shape] != "na")
            print "  dag-scale " shape " restart loads " maxN[shape] " nodes in <= 5 s: " maxRestart[shape] "  " verdict(maxRestart[shape] + 0 <= 5) (maxN[shape] < 1000000 ? " (not the 1M of the target)" : "")
    }
    for (kind in waitp99)
        print "  wait " kind " hand-off p99 <= 1000 us: " waitp99[kind] "  " verdict(waitp99[kind] + 0 <= 1000)
}
