/// `tls://HOST:PORT`, with an IPv6 host in brackets (`tls://[::1]:7443`): the one spelling of a
/// network address that the daemon's `--listen`, the clients' `--connect` and the bench read.
public struct TLSAddress: Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Why a text is not an address, in words for an error message.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `text`; port 0 (any free port) only when `allowAnyPort`, as a listener takes it.
    public init(parsing text: String, allowAnyPort: Bool = false) throws {
        guard text.hasPrefix("tls://") else { throw Invalid(description: "not a tls:// address") }
        let rest = text.dropFirst("tls://".count)
        let host: Substring, portText: Substring
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = rest[rest.index(after: rest.startIndex)..<close]
            let afterBracket = rest[rest.index(after: close)...]
            guard afterBracket.hasPrefix(":") else { throw Invalid(description: "no port") }
            portText = afterBracket.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw Invalid(description: "no port") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        let lowest = allowAnyPort ? 0 : 1
        guard !host.isEmpty, let port = Int(portText), (lowest...65535).contains(port) else {
            throw Invalid(description: "expected tls://HOST:PORT with a port from \(lowest) to 65535")
        }
        self.init(host: String(host), port: port)
    }

    public var description: String { "tls://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
}
