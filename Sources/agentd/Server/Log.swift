import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import Glibc

/// One line per event on stderr, with a UTC timestamp: enough for a daemon run by a supervisor.
enum Log {
    static func info(_ message: String) { write("INFO", message) }
    static func error(_ message: String) { write("ERROR", message) }

    private static func write(_ level: String, _ message: String) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let stamp = ISOTime.string(unixMs: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
        fputs("\(stamp) \(level) agentd: \(message)\n", stderr)
    }
}
