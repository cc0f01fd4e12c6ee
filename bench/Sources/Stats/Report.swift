/// Prints a load run: one line for people, one `RESULT key=value ...` line for scripts.
func report(scenario: String, options: Options, fields: [(String, String)], _ result: LoadRunner.Result) {
    let target = options.targetLabel
    var human = "\(scenario) \(target) c=\(options.connections) P=\(options.pipeline)"
    for (key, value) in fields { human += " \(key)=\(value)" }
    human += ": \(grouped(Int(result.opsPerSecond))) ops/s  \(result.latency.humanFields)"
    if let cpu = result.serverCPUMicrosPerOp { human += "  server \(fixed(cpu, 2)) us CPU/op" }
    if let rss = result.serverAfter?.rssKB { human += ", RSS \(fixed(Double(rss) / 1024, 1)) MiB" }
    human += "  (client \(fixed(result.clientCPUMicrosPerOp, 2)) us CPU/op"
    if result.empty > 0 { human += ", \(result.empty) empty answers" }
    if result.errors > 0 { human += ", \(result.errors) ERRORS" }
    human += ")"
    print(human)

    var line = "RESULT scenario=\(scenario) target=\(target)"
    for (key, value) in fields { line += " \(key)=\(value)" }
    line += " c=\(options.connections) P=\(options.pipeline) ops=\(Int(result.opsPerSecond.rounded()))"
    line += " " + result.latency.resultFields
    line += " cpu_us_per_op=" + (result.serverCPUMicrosPerOp.map { fixed($0, 2) } ?? "na")
    line += " rss_kb=" + (result.serverAfter.map { String($0.rssKB) } ?? "na")
    line += " client_cpu_us_per_op=\(fixed(result.clientCPUMicrosPerOp, 2))"
    line += " requests=\(result.requests) empty=\(result.empty) errors=\(result.errors) seconds=\(fixed(result.seconds, 2))"
    print(line)
}
