import AgentdClient
import Glibc

/// Command-line options. Every scenario reads the ones it needs; see `usage`.
struct Options {
    var scenario = ""
    var target = "agentd"
    var label = ""                       // names the target in reports (e.g. redis-aof); default: target
    var socket = ""
    /// agentd over the network: `--connect tls://HOST:PORT`, then the token and CA files.
    var connect = ""
    var tokenFile = ""
    var caFile = ""
    var connections = 64
    var pipeline = 1
    var durationSeconds = 10.0
    var warmupSeconds = 1.0
    var count = 0                        // 0: bounded by duration only
    var keys = "distinct"                // or shared:K
    var sharedTask = false
    /// locks (agentd): nodes of a task one more client reads with TaskStatus throughout; 0: none.
    var bigReaderNodes = 0
    var pid: Int32 = 0                   // the daemon's pid; 0: found from the socket's owner
    var lockTTLSeconds = 30
    // dag-scale
    var sizes = [1_000, 10_000, 100_000, 1_000_000]
    var shapes = ["chain", "fan"]
    var cycles = 1_000
    var agentdBinary = ""
    var sync = "normal"
    var keepDirectory = false
    // wait
    var waiters = 1_000
    var handoffs = 2_000
    var verbose = false

    var targetLabel: String { label.isEmpty ? (connect.isEmpty ? target : target + "-tls") : label }

    /// HOST and PORT of `--connect tls://HOST:PORT` (an IPv6 address in brackets), or nil.
    var tlsAddress: (host: String, port: Int)? {
        if connect.isEmpty { return nil }
        do {
            let address = try TLSAddress(parsing: connect)
            return (address.host, address.port)
        } catch {
            fail("--connect \(connect): \(error)")
        }
    }

    static let usage = """
    usage: bench SCENARIO [options]        (or --scenario SCENARIO)

    scenarios: locks, leases, swarm, dag-scale, wait

      --target agentd|redis|beanstalkd   driver (default agentd; redis: locks; beanstalkd: leases)
      --socket PATH          server's Unix socket (agentd default: $AGENTD_SOCKET_PATH or ~/.agentd/agentd.sock)
      --connect tls://HOST:PORT   agentd over TLS instead of the Unix socket (locks, leases, swarm):
                             every connection authenticates first (the server's pid: --pid, or the
                             owner of the listening port when it is on this machine)
      --token-file FILE      with --connect: the agent's token (required)
      --ca FILE              with --connect: the CA that signed the daemon's certificate (default: the system's)
      --label NAME           target name in the report (default: the target, with -tls over --connect)
      -c, --connections N    connections (default 64)
      -P, --pipeline N       requests in flight per connection (default 1)
      --duration SECS        measured time (default 10)
      --warmup SECS          unmeasured time first (default 1)
      --count N              stop after N measured requests (default: duration only)
      --pid PID              the server process, for CPU and RSS (default: owner of the socket)
      --keys distinct|shared:K   locks: a key per worker, or K hot keys (default distinct)
      --big-reader N             locks (agentd): one more client reads TaskStatus of an N-node task throughout
      --ttl SECS             lock TTL (default 30)
      --shared-task          leases: one task (tube) for every connection instead of one each
      --sizes A,B,..         dag-scale node counts (default 1000,10000,100000,1000000)
      --shapes chain,fan     dag-scale shapes (default both)
      --cycles N             dag-scale: timed acquire+complete pairs per DAG (default 1000)
      --agentd-binary PATH   dag-scale: start a fresh daemon per DAG and time its restart
      --sync normal|full     dag-scale: the daemon's --sync (default normal)
      --keep                 dag-scale: leave the daemon's directory (databases, logs) in /tmp
      --waiters N            wait: parked acquirers (default 1000)
      --handoffs N           wait: measured hand-offs per kind (default 2000)
      -v, --verbose          progress on stderr (dag-scale builds, wait hand-offs over 10 ms)
    """

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var index = 0
        func value(_ flag: String) -> String {
            index += 1
            guard index < arguments.count else { fail("\(flag) needs a value") }
            return arguments[index]
        }
        func number(_ flag: String) -> Int {
            let text = value(flag)
            guard let parsed = Int(text), parsed >= 0 else { fail("\(flag): not a count: \(text)") }
            return parsed
        }
        func seconds(_ flag: String) -> Double {
            let text = value(flag)
            guard let parsed = Double(text), parsed >= 0 else { fail("\(flag): not a number of seconds: \(text)") }
            return parsed
        }
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "-h", "--help": print(usage); exit(0)
            case "--scenario": options.scenario = value(argument)
            case "--target": options.target = value(argument)
            case "--label": options.label = value(argument)
            case "--socket": options.socket = value(argument)
            case "--connect": options.connect = value(argument)
            case "--token-file": options.tokenFile = value(argument)
            case "--ca": options.caFile = value(argument)
            case "-c", "--connections": options.connections = number(argument)
            case "-P", "--pipeline": options.pipeline = number(argument)
            case "--duration": options.durationSeconds = seconds(argument)
            case "--warmup": options.warmupSeconds = seconds(argument)
            case "--count": options.count = number(argument)
            case "--pid": options.pid = Int32(number(argument))
            case "--keys": options.keys = value(argument)
            case "--ttl": options.lockTTLSeconds = number(argument)
            case "--shared-task": options.sharedTask = true
            case "--big-reader": options.bigReaderNodes = number(argument)
            case "--sizes":
                options.sizes = value(argument).split(separator: ",").map { part in
                    guard let size = parseSize(String(part)), size > 0 else { fail("--sizes: bad size \(part)") }
                    return size
                }
            case "--shapes":
                options.shapes = value(argument).split(separator: ",").map(String.init)
                for shape in options.shapes where shape != "chain" && shape != "fan" {
                    fail("--shapes: chain or fan, not \(shape)")
                }
            case "--cycles": options.cycles = number(argument)
            case "--agentd-binary": options.agentdBinary = value(argument)
            case "--sync": options.sync = value(argument)
            case "--keep": options.keepDirectory = true
            case "--waiters": options.waiters = number(argument)
            case "--handoffs": options.handoffs = number(argument)
            case "-v", "--verbose": options.verbose = true
            default:
                if argument.hasPrefix("-") || !options.scenario.isEmpty { fail("unknown argument \(argument)\n\(usage)") }
                options.scenario = argument
            }
            index += 1
        }
        if options.scenario.isEmpty { fail("no scenario\n\(usage)") }
        if options.connections < 1 || options.pipeline < 1 { fail("connections and pipeline must be at least 1") }
        if options.durationSeconds == 0 && options.count == 0 { fail("--duration 0 needs a --count") }
        if !options.connect.isEmpty {
            _ = options.tlsAddress
            if options.target != "agentd" { fail("--connect is for --target agentd") }
            if !["locks", "leases", "swarm"].contains(options.scenario) { fail("--connect: locks, leases and swarm only") }
            if options.bigReaderNodes > 0 { fail("--big-reader reads over the Unix socket; not with --connect") }
            if options.tokenFile.isEmpty { fail("--connect needs --token-file") }
        } else if !options.tokenFile.isEmpty || !options.caFile.isEmpty {
            fail("--token-file and --ca go with --connect tls://HOST:PORT")
        }
        if options.socket.isEmpty {
            if options.target != "agentd" { fail("--socket is required for --target \(options.target)") }
            options.socket = defaultAgentdSocket()
        }
        return options
    }

    /// Sizes may be written 1k, 10k, 1M.
    private static func parseSize(_ text: String) -> Int? {
        if let plain = Int(text) { return plain }
        guard let last = text.last, let head = Int(text.dropLast()) else { return nil }
        switch last {
        case "k", "K": return head * 1_000
        case "m", "M": return head * 1_000_000
        default: return nil
        }
    }

    /// Where `agentd serve` listens by default.
    private static func defaultAgentdSocket() -> String {
        if let path = getenv("AGENTD_SOCKET_PATH") { return String(cString: path) }
        let home = getenv("AGENTD_HOME").map { String(cString: $0) }
            ?? ((getenv("HOME").map { String(cString: $0) } ?? "/root") + "/.agentd")
        return home + "/agentd.sock"
    }

    /// The K of `--keys shared:K`, or nil for distinct keys.
    var sharedKeyCount: Int? {
        if keys == "distinct" { return nil }
        guard keys.hasPrefix("shared:"), let count = Int(keys.dropFirst("shared:".count)), count > 0 else {
            fail("--keys: distinct or shared:K, not \(keys)")
        }
        return count
    }
}
