import Glibc

// bench: the load harness of agentd, and the same traffic against redis-server and beanstalkd.
// See Options.usage, and bench/compare for the side-by-side run.

setvbuf(stdout, nil, _IOLBF, 0)
let options = Options.parse(Array(CommandLine.arguments.dropFirst()))

/// The server's pid for CPU and RSS: --pid, else the process listening on the socket.
func serverPID() -> Int32 {
    if options.pid > 0 { return options.pid }
    if let pid = ProcStats.pidListening(on: options.socket) { return pid }
    warn("bench: cannot tell which process listens on \(options.socket); pass --pid for CPU and RSS")
    return 0
}

func unsupported() -> Never {
    fail("scenario \(options.scenario) has no --target \(options.target) driver (redis: locks; beanstalkd: leases; agentd: all)")
}

switch (options.scenario, options.target) {
case ("locks", "agentd"):
    runLocks(options, harness: Harness(socketPath: options.socket), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("locks", "redis"):
    runLocks(options, harness: Harness(socketPath: options.socket), driver: RedisDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("leases", "agentd"):
    runLeases(options, harness: Harness(socketPath: options.socket), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("leases", "beanstalkd"):
    runLeases(options, harness: Harness(socketPath: options.socket), driver: BeanstalkdDriver(), serverPID: serverPID())
case ("swarm", "agentd"):
    runSwarm(options, harness: Harness(socketPath: options.socket), driver: AgentdDriver(lockTTLSeconds: options.lockTTLSeconds), serverPID: serverPID())
case ("dag-scale", "agentd"):
    DagScaleRun(options: options).run()
case ("wait", "agentd"):
    WaitRun(options: options, harness: Harness(socketPath: options.socket)).run()
case ("locks", _), ("leases", _), ("swarm", _), ("dag-scale", _), ("wait", _):
    unsupported()
default:
    fail("unknown scenario \(options.scenario)\n\(Options.usage)")
}
