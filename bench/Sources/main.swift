import AgentdClient
import Glibc
import Reactor

// bench: the load harness of agentd, and the same traffic against redis-server and beanstalkd.
// See Options.usage, and bench/compare for the side-by-side run.

setvbuf(stdout, nil, _IOLBF, 0)
let options = Options.parse(Array(CommandLine.arguments.dropFirst()))

/// The server's pid for CPU and RSS: --pid, else the process listening on the socket (or on the
/// port of --connect, when the daemon runs on this machine).
func serverPID() -> Int32 {
    if options.pid > 0 { return options.pid }
    if let (_, port) = options.tlsAddress {
        if let pid = ProcStats.pidListening(tcpPort: port) { return pid }
        warn("bench: cannot tell which process listens on port \(port); pass --pid for CPU and RSS")
        return 0
    }
    if let pid = ProcStats.pidListening(on: options.socket) { return pid }
    warn("bench: cannot tell which process listens on \(options.socket); pass --pid for CPU and RSS")
    return 0
}

/// The Unix socket, or with --connect the daemon's TLS port, every connection authenticating first.
func agentdHarness() -> Harness {
    guard let (host, port) = options.tlsAddress else { return Harness(socketPath: options.socket) }
    let token: String
    let context: TLSContext
    do {
        token = try AgentdConnection.readTokenFile(options.tokenFile)
        context = try TLSContext(clientTrusting: options.caFile.isEmpty ? nil : options.caFile)
    } catch {
        fail("bench: \(error)")
    }
    return Harness(endpoint: .tls(host: host, port: port, context: context),
                   greeting: AgentdDriver.authentication(token: token))
}

func unsupported() -> Never {
    fail("scenario \(options.scenario) has no --target \(options.target) driver (redis: locks; beanstalkd: leases; agentd: all)")
}

switch (options.scenario, options.target) {
case ("locks", "agentd"):
    runLocks(options, harness: agentdHarness(), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("locks", "redis"):
    runLocks(options, harness: Harness(socketPath: options.socket), driver: RedisDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("leases", "agentd"):
    runLeases(options, harness: agentdHarness(), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("leases", "beanstalkd"):
    runLeases(options, harness: Harness(socketPath: options.socket), driver: BeanstalkdDriver(), serverPID: serverPID())
case ("swarm", "agentd"):
    runSwarm(options, harness: agentdHarness(), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("dag-scale", "agentd"):
    DagScaleRun(options: options).run()
case ("wait", "agentd"):
    WaitRun(options: options, harness: Harness(socketPath: options.socket)).run()
case ("locks", _), ("leases", _), ("swarm", _), ("dag-scale", _), ("wait", _):
    unsupported()
default:
    fail("unknown scenario \(options.scenario)\n\(Options.usage)")
}
