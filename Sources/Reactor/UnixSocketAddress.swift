import CUV
import Glibc

/// A sockaddr_un for a filesystem path, plus the blocking-free probes the listener needs.
struct UnixSocketAddress {
    private var storage = sockaddr_un()

    /// Refuses paths that sun_path cannot hold with their NUL (libuv 1.44 would silently truncate),
    /// and empty paths or paths with NUL bytes (which would mean Linux's abstract namespace).
    init(path: String) throws {
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        guard bytes.count < capacity else { throw ReactorError.pathTooLong(path) }
        guard !bytes.isEmpty, !bytes.contains(0) else { throw ReactorError.system("socket path", EINVAL) }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: bytes) }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = storage
        return withUnsafePointer(to: &copy) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    enum ProbeResult { case live, stale, vanished }

    /// Tries a non-blocking connect() to tell a live server from a leftover socket file.
    /// A full backlog (EAGAIN) still means someone is listening.
    func probe() throws -> ProbeResult {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ReactorError.system("socket", errno) }
        defer { Glibc.close(fd) }
        var result: Int32
        repeat {
            result = withSockaddr { connect(fd, $0, $1) }
        } while result != 0 && errno == EINTR
        if result == 0 { return .live }
        switch errno {
        case EAGAIN, EINPROGRESS: return .live
        case ECONNREFUSED: return .stale
        case ENOENT: return .vanished
        case let code: throw ReactorError.system("connect", code)
        }
    }
}

/// lstat() that reports "nothing there" as nil.
func fileStatus(_ path: String) throws -> stat? {
    var status = stat()
    if lstat(path, &status) == 0 { return status }
    if errno == ENOENT { return nil }
    throw ReactorError.system("lstat", errno)
}

func isSocket(_ status: stat) -> Bool {
    (status.st_mode & S_IFMT) == S_IFSOCK
}
