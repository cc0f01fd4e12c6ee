import Glibc

/// The tokens file: one agent per line, `NAME TOKEN`, blank lines and `#` comments allowed.
/// It holds secrets, so it must not be readable (or writable) by group or others: such a file is
/// refused, at start and on reload.
struct TokenFile {
    struct Entry {
        var name: String
        var token: [UInt8]
    }

    let path: String
    private(set) var entries: [Entry] = []

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    init(path: String) throws {
        self.path = path
        let text = try TokenFile.readPrivateFile(path)
        var names: Set<String> = []
        var tokens: Set<[UInt8]> = []
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 2 else {
                throw Problem(description: "\(path) line \(offset + 1): expected NAME TOKEN")
            }
            let name = String(fields[0])
            let token = Array(fields[1].utf8)
            guard names.insert(name).inserted else {
                throw Problem(description: "\(path) line \(offset + 1): the agent \(name) is named twice")
            }
            guard tokens.insert(token).inserted else {
                throw Problem(description: "\(path) line \(offset + 1): the token of \(name) is also another agent's")
            }
            entries.append(Entry(name: name, token: token))
        }
    }

    /// The agent whose token this is. Every entry is compared, each in time that depends only on
    /// the lengths, so the answer's timing tells nothing about which token came close.
    func agent(presenting candidate: [UInt8]) -> String? {
        var found: String?
        for entry in entries where TokenFile.constantTimeEqual(entry.token, candidate) {
            found = entry.name
        }
        return found
    }

    func token(of name: String) -> [UInt8]? {
        entries.first(where: { $0.name == name })?.token
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        difference |= (a.count == b.count) ? 0 : 1
        let count = max(a.count, b.count)
        for index in 0..<count {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    /// Reads the whole file, refusing one that group or others may read or write.
    private static func readPrivateFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw Problem(description: "cannot open the tokens file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw Problem(description: "cannot stat the tokens file \(path): \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw Problem(description: "the tokens file \(path) is not a regular file")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw Problem(description: "the tokens file \(path) is readable or writable by others (mode \(String(mode, radix: 8))); chmod 600 it")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else {
                throw Problem(description: "cannot read the tokens file \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return s
    }
}
