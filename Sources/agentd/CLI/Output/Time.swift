import AgentdBase
import Glibc

/// Times as people read them in a table: "in 4m12s", "3m ago", "12:04:05".
enum Time {
    /// Wall-clock Unix seconds, fractional.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Unix seconds of a wire timestamp ("2024-02-29T12:34:56.789Z"), nil if it is not one.
    static func unixSeconds(iso: String) -> Double? {
        ISOTime.parse(iso).map { Double($0) / 1000 }
    }

    /// "in 4m12s" for an instant ahead, "expired 3s ago" for one past.
    static func until(_ instant: Double, now: Double = now()) -> String {
        let left = instant - now
        return left >= 0 ? "in " + duration(left, units: 2) : "expired " + duration(-left, units: 1) + " ago"
    }

    /// "3m ago" (one unit: an age needs no more precision in a table).
    static func ago(_ instant: Double, now: Double = now()) -> String {
        let age = now - instant
        return age < 1 ? "just now" : duration(age, units: 1) + " ago"
    }

    /// "12s", "4m12s", "2h05m", "3d4h" (with `units: 1`: "4m", "2h", "3d").
    static func duration(_ seconds: Double, units: Int = 2) -> String {
        let total = Int64(max(0, seconds).rounded(.down))
        let parts: [(Int64, String)] = [(total / 86_400, "d"), (total / 3_600 % 24, "h"), (total / 60 % 60, "m"), (total % 60, "s")]
        guard let first = parts.firstIndex(where: { $0.0 > 0 }) else { return "0s" }
        var out = "\(parts[first].0)\(parts[first].1)"
        if units > 1, first + 1 < parts.count {
            let next = parts[first + 1]
            out += (next.0 < 10 && first + 1 > 1 ? "0" : "") + "\(next.0)\(next.1)"
        }
        return out
    }

    /// Local wall-clock time of day, "12:04:05", for a line in a stream of events.
    static func clock(_ instant: Double) -> String {
        var seconds = time_t(instant.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
