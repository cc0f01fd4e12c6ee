import Glibc

/// What /proc says about a process: CPU time (user + system, all threads) and resident memory.
struct ProcSample {
    var cpuNanos: UInt64
    var rssKB: Int
}

enum ProcStats {
    private static let ticksPerSecond = UInt64(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime from /proc/PID/stat and VmRSS from /proc/PID/status; nil if the process is gone.
    static func sample(pid: Int32) -> ProcSample? {
        guard pid > 0,
              let stat = readSmallFile("/proc/\(pid)/stat"),
              let status = readSmallFile("/proc/\(pid)/status") else { return nil }
        // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 12,
              let user = UInt64(String(decoding: fields[11], as: UTF8.self)),
              let system = UInt64(String(decoding: fields[12], as: UTF8.self)) else { return nil }
        var rss = 0
        for line in status.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("VmRSS:".utf8)) {
            let digits = line.filter { $0 >= 48 && $0 <= 57 }
            rss = Int(String(decoding: digits, as: UTF8.self)) ?? 0
        }
        return ProcSample(cpuNanos: (user + system) * 1_000_000_000 / ticksPerSecond, rssKB: rss)
    }

    /// This process's own CPU time (user + system).
    static func selfCPUNanos() -> UInt64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func nanos(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1000 }
        return nanos(usage.ru_utime) + nanos(usage.ru_stime)
    }

    /// The process that listens on the Unix socket at `path`: its listening socket's inode from
    /// /proc/net/unix, then the process holding an fd on that inode. Nil when not found (another
    /// user's process, or no such socket).
    static func pidListening(on path: String) -> Int32? {
        guard let table = readSmallFile("/proc/net/unix", limit: 64 << 20) else { return nil }
        var inode: String?
        for line in table.split(separator: UInt8(ascii: "\n")).dropFirst() {
            let columns = line.split(separator: UInt8(ascii: " "))
            // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 marks a listener.
            guard columns.count >= 8, String(decoding: columns[7], as: UTF8.self) == path,
                  String(decoding: columns[3], as: UTF8.self) == "00010000" else { continue }
            inode = String(decoding: columns[6], as: UTF8.self)
        }
        guard let inode else { return nil }
        return pidHolding(socketInode: inode)
    }

    /// The process that listens on TCP `port` (any local address, IPv4 or IPv6): the listening
    /// socket's inode from /proc/net/tcp and tcp6, then the process holding it. Nil when not found.
    static func pidListening(tcpPort port: Int) -> Int32? {
        var hexPort = String(port, radix: 16, uppercase: true)
        while hexPort.count < 4 { hexPort = "0" + hexPort }
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let rows = readSmallFile(table, limit: 64 << 20) else { continue }
            for line in rows.split(separator: UInt8(ascii: "\n")).dropFirst() {
                // sl local_address rem_address st ... inode; st 0A is LISTEN.
                let columns = line.split(separator: UInt8(ascii: " "))
                guard columns.count >= 10, String(decoding: columns[3], as: UTF8.self) == "0A",
                      String(decoding: columns[1], as: UTF8.self).hasSuffix(":" + hexPort) else { continue }
                if let pid = pidHolding(socketInode: String(decoding: columns[9], as: UTF8.self)) { return pid }
            }
        }
        return nil
    }

    /// The process with an fd on the socket `inode`, or nil.
    private static func pidHolding(socketInode inode: String) -> Int32? {
        let wanted = "socket:[\(inode)]"
        guard let proc = opendir("/proc") else { return nil }
        defer { closedir(proc) }
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name) else { continue }
            guard let fds = opendir("/proc/\(name)/fd") else { continue }
            defer { closedir(fds) }
            var link = [CChar](repeating: 0, count: 256)
            while let fd = readdir(fds) {
                let fdName = withUnsafeBytes(of: fd.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                let length = readlink("/proc/\(name)/fd/\(fdName)", &link, link.count - 1)
                guard length > 0 else { continue }
                let target = link[0..<length].withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
                if target == wanted { return pid }
            }
        }
        return nil
    }
}

/// Reads a file (procfs files report size 0, so read until EOF).
func readSmallFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var contents: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while contents.count < limit {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        contents.append(contentsOf: chunk[0..<count])
    }
    return contents
}
