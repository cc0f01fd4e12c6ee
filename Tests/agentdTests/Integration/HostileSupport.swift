// Integration support for the hostile-client and fault tests: what the daemon process uses
// (resident memory, open descriptors), our own descriptor limit, and raw socket moves that
// the line client does not make (non-blocking writes, an abortive close).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension ITDaemon {
    /// The daemon's pid (it must be running).
    var pid: pid_t {
        get throws {
            guard let child, child.isRunning else { throw ITError("daemon is not running") }
            return child.pid
        }
    }

    /// Resident memory of the daemon in KiB (VmRSS in /proc/PID/status).
    func residentKiB() throws -> Int {
        let status = ITChild.readFile("/proc/\(try pid)/status")
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.dropFirst("VmRSS:".count).filter(\.isNumber)
            if let value = Int(digits) { return value }
        }
        throw ITError("no VmRSS in /proc/\(try pid)/status")
    }

    /// How many descriptors the daemon has open.
    func openDescriptors() throws -> Int {
        let entries = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(try pid)/fd")
        return entries.count
    }
}

/// Raise our own soft limit on open files to at least `wanted` (up to the hard limit).
/// Returns the limit now in force.
@discardableResult
func itRaiseDescriptorLimit(to wanted: Int) -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < rlim_t(wanted) {
        limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}

extension ITLineClient {
    /// Send as much of `bytes` as the socket takes without blocking; the count sent.
    func sendWithoutBlocking(_ bytes: [UInt8]) -> Int {
        let n = bytes.withUnsafeBytes { raw in
            Glibc.send(fd, raw.baseAddress!, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        return max(0, n)
    }

    /// Close with a reset instead of an orderly shutdown (SO_LINGER 0).
    func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// Read answer lines until EOF (bounded); throws on a timeout.
    func readUntilEOF(timeout: TimeInterval = 20) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw ITError("no EOF within \(timeout) s after \(lines.count) lines") }
            switch readLineOutcome(timeout: left) {
            case .line(let bytes): lines.append(bytes)
            case .eof(let pending):
                if !pending.isEmpty { throw ITError("EOF after \(pending.count) bytes of an unfinished answer") }
                return lines
            case .failure(let code) where code == ECONNRESET: return lines
            case let other: throw ITError("reading to EOF: \(other) after \(lines.count) lines")
            }
        }
    }
}
