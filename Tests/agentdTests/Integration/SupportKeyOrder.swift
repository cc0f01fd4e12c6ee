// Integration test support: reading an answer's keys in the order they come on the wire.
// Foundation's JSON parser forgets key order, and key order is part of what a client of the
// original may depend on (one that compares bytes or reads answers with a regex).

/// A JSON value that keeps its objects' keys in wire order. Scalars keep their raw text.
indirect enum ITOrderedJSON {
    case object([(key: String, value: ITOrderedJSON)])
    case array([ITOrderedJSON])
    case scalar(String)

    static func parse(_ bytes: [UInt8]) throws -> ITOrderedJSON {
        var parser = Parser(bytes: bytes)
        let value = try parser.value()
        parser.skipSpace()
        guard parser.offset == bytes.count else { throw ITError("trailing bytes after the JSON value") }
        return value
    }

    /// The keys of this object, in wire order (empty for anything else).
    var keys: [String] {
        if case let .object(members) = self { return members.map(\.key) }
        return []
    }

    subscript(key: String) -> ITOrderedJSON {
        if case let .object(members) = self, let member = members.first(where: { $0.key == key }) {
            return member.value
        }
        return .scalar("<missing \(key)>")
    }

    subscript(index: Int) -> ITOrderedJSON {
        if case let .array(items) = self, items.indices.contains(index) { return items[index] }
        return .scalar("<missing [\(index)]>")
    }

    private struct Parser {
        let bytes: [UInt8]
        var offset = 0

        mutating func skipSpace() {
            while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
        }

        mutating func value() throws -> ITOrderedJSON {
            skipSpace()
            guard offset < bytes.count else { throw ITError("JSON ends early") }
            switch bytes[offset] {
            case UInt8(ascii: "{"):
                offset += 1
                var members: [(String, ITOrderedJSON)] = []
                skipSpace()
                if bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object([]) }
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    guard bytes[offset] == UInt8(ascii: ":") else { throw ITError("expected : at \(offset)") }
                    offset += 1
                    members.append((key, try value()))
                    skipSpace()
                    let next = bytes[offset]
                    offset += 1
                    if next == UInt8(ascii: "}") { return .object(members.map { (key: $0.0, value: $0.1) }) }
                    guard next == UInt8(ascii: ",") else { throw ITError("expected , or } at \(offset - 1)") }
                }
            case UInt8(ascii: "["):
                offset += 1
                var items: [ITOrderedJSON] = []
                skipSpace()
                if bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array([]) }
                while true {
                    items.append(try value())
                    skipSpace()
                    let next = bytes[offset]
                    offset += 1
                    if next == UInt8(ascii: "]") { return .array(items) }
                    guard next == UInt8(ascii: ",") else { throw ITError("expected , or ] at \(offset - 1)") }
                }
            case UInt8(ascii: "\""):
                return .scalar(try string())
            default:
                let start = offset
                while offset < bytes.count, !",]} \n\r\t".utf8.contains(bytes[offset]) { offset += 1 }
                return .scalar(String(decoding: bytes[start..<offset], as: UTF8.self))
            }
        }

        /// A string's raw contents (escapes left as they are: keys never need them here).
        mutating func string() throws -> String {
            guard bytes[offset] == UInt8(ascii: "\"") else { throw ITError("expected a string at \(offset)") }
            offset += 1
            let start = offset
            while bytes[offset] != UInt8(ascii: "\"") {
                if bytes[offset] == UInt8(ascii: "\\") { offset += 1 }
                offset += 1
            }
            defer { offset += 1 }
            return String(decoding: bytes[start..<offset], as: UTF8.self)
        }
    }
}
