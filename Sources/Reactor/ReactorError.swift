import Glibc

/// Failures the Reactor reports to its caller. `system` carries the failing call and a positive errno
/// (libuv's negative codes are converted, so both sources read the same).
public enum ReactorError: Error, Equatable {
    /// A server answered a connect() at this path; it was left alone.
    case liveDaemonAtPath(String)
    /// Something that is not a socket exists at this path; it was left alone.
    case notASocket(String)
    /// The path does not fit in sockaddr_un.sun_path (107 bytes plus the terminating NUL).
    case pathTooLong(String)
    case system(String, Int32)
    /// The TLS handshake failed (e.g. the server's certificate is not trusted), or the peer closed
    /// the connection during it.
    case tls(String)
}

extension ReactorError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .liveDaemonAtPath(let path): return "a live server is already listening at \(path)"
        case .notASocket(let path): return "\(path) exists and is not a socket"
        case .pathTooLong(let path): return "socket path too long (\(path.utf8.count) bytes): \(path)"
        case .system(let call, let code): return "\(call): \(String(cString: strerror(code)))"
        case .tls(let why): return why
        }
    }
}

extension ReactorError {
    /// Wraps a libuv status (negative errno on Unix).
    static func uv(_ call: String, _ status: Int32) -> ReactorError {
        .system(call, -status)
    }
}
