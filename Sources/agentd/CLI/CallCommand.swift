import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import Glibc

/// `agentd call METHOD [PARAMS_JSON] [--socket PATH]`: one request, the result printed as
/// indented JSON; an error answer prints its message and exits 1.
enum CallCommand {
    static func run(_ arguments: [String], environment: [String: String]) -> Int32 {
        var positional: [String] = []
        var flags: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--socket" {
                flags.append(argument)
                if let value = rest.popFirst() { flags.append(value) }
            } else {
                positional.append(argument)
            }
        }
        guard (1...2).contains(positional.count) else {
            fputs("usage: agentd call METHOD [PARAMS_JSON] [--socket PATH]\n", stderr)
            return 2
        }
        let config: Configuration
        do {
            config = try Configuration.load(arguments: flags, environment: environment, allowServeFlags: false)
        } catch {
            fputs("agentd: \(error)\n", stderr)
            return 2
        }
        let params = positional.count == 2 ? positional[1] : "{}"
        guard isJSON(params) else {
            fputs("agentd: PARAMS_JSON is not valid JSON: \(params)\n", stderr)
            return 2
        }
        var request: [UInt8] = []
        request.appendASCII("{\"id\":1,\"method\":")
        request.appendJSONString(positional[0])
        request.appendASCII(",\"params\":")
        request.append(contentsOf: params.utf8)
        request.appendASCII("}\n")

        guard let line = exchange(request, socketPath: config.socketPath) else { return 1 }
        return printAnswer(line)
    }

    private static func isJSON(_ text: String) -> Bool {
        var tape = JSONTape()
        var copy = text
        return copy.withUTF8 { bytes in
            do { try tape.parse(UnsafeRawBufferPointer(bytes)); return true } catch { return false }
        }
    }

    /// Sends the request and reads the one answer line.
    private static func exchange(_ request: [UInt8], socketPath: String) -> [UInt8]? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return fail("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            return fail("socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            return fail("cannot connect to \(socketPath): \(String(cString: strerror(errno))) (is the daemon running?)")
        }
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
            guard n > 0 else { return fail("write: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            answer.append(contentsOf: buffer[0..<n])
            if let newline = answer.firstIndex(of: UInt8(ascii: "\n")) {
                return Array(answer[..<newline])
            }
        }
        return answer.isEmpty ? fail("the daemon closed the connection without an answer") : answer
    }

    private static func printAnswer(_ line: [UInt8]) -> Int32 {
        var tape = JSONTape()
        return line.withUnsafeBytes { bytes -> Int32 in
            do { try tape.parse(bytes) } catch {
                fputs("agentd: the daemon answered something that is not JSON\n", stderr)
                return 1
            }
            let document = JSONDocument(tape: tape, input: bytes)
            if let error = document.member(document.root, "error") {
                let message = document.member(error, "message").map { document.string($0) } ?? "unknown error"
                fputs("agentd: \(message)\n", stderr)
                return 1
            }
            var out: [UInt8] = []
            if let result = document.member(document.root, "result") {
                PrettyPrinter.append(document, result, indent: 0, to: &out)
            } else {
                out.appendASCII("null")
            }
            out.append(UInt8(ascii: "\n"))
            out.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
            return 0
        }
    }

    private static func fail(_ message: String) -> [UInt8]? {
        fputs("agentd: \(message)\n", stderr)
        return nil
    }
}

/// Indented JSON for people, two spaces a level.
enum PrettyPrinter {
    static func append(_ document: JSONDocument, _ index: Int, indent: Int, to out: inout [UInt8]) {
        func newline(_ level: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * 2))
        }
        switch document.kind(index) {
        case .object:
            var first = true
            out.append(UInt8(ascii: "{"))
            for (key, value) in document.members(index) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                newline(indent + 1)
                out.append(contentsOf: document.raw(key))
                out.appendASCII(": ")
                append(document, value, indent: indent + 1, to: &out)
            }
            if !first { newline(indent) }
            out.append(UInt8(ascii: "}"))
        case .array:
            var first = true
            out.append(UInt8(ascii: "["))
            for element in document.elements(index) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                newline(indent + 1)
                append(document, element, indent: indent + 1, to: &out)
            }
            if !first { newline(indent) }
            out.append(UInt8(ascii: "]"))
        default:
            out.append(contentsOf: document.raw(index))
        }
    }
}
