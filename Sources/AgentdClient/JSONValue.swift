import AgentdBase

/// A JSON value as clients handle it: requests are built from it and answers read into it.
/// Objects keep their keys in the order they were written, so what a person sees (and what a
/// test compares) is the daemon's order.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    // MARK: Reading

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public subscript(index: Int) -> JSONValue? {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return nil
    }

    public var isNull: Bool { self == .null }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }

    /// An integer, also from a double that holds a whole number.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e18: return Int64(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    // MARK: Writing

    /// Compact JSON, as one protocol line carries it.
    public var compactText: String { String(decoding: compactBytes(), as: UTF8.self) }

    public func compactBytes() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out, indent: nil, level: 0)
        return out
    }

    /// Indented JSON for people, two spaces a level.
    public var prettyText: String {
        var out: [UInt8] = []
        append(to: &out, indent: 2, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    func append(to out: inout [UInt8], indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * indent))
        }
        switch self {
        case .null: out.appendASCII("null")
        case .bool(let b): out.appendASCII(b ? "true" : "false")
        case .int(let i): out.appendJSONInt(i)
        case .double(let d):
            // JSON has no infinities or NaN.
            if d.isFinite { out.append(contentsOf: "\(d)".utf8) } else { out.appendASCII("null") }
        case .string(let s): out.appendJSONString(s)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                element.append(to: &out, indent: indent, level: level + 1)
            }
            if !elements.isEmpty { newline(level) }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in object.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                out.appendJSONString(key)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(UInt8(ascii: " ")) }
                value.append(to: &out, indent: indent, level: level + 1)
            }
            if !object.isEmpty { newline(level) }
            out.append(UInt8(ascii: "}"))
        }
    }

    // MARK: Parsing

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses one JSON document (RFC 8259, UTF-8 checked) with the daemon's own scanner.
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var tape = JSONTape()
        return try bytes.withUnsafeBytes { raw in
            do { try tape.parse(raw) } catch { throw ParseError(description: (error as? JSONError)?.message ?? "\(error)") }
            return JSONValue(JSONDocument(tape: tape, input: raw), 0)
        }
    }

    public static func parse(_ text: String) throws -> JSONValue { try parse(Array(text.utf8)) }

    init(_ document: JSONDocument, _ index: Int) {
        switch document.kind(index) {
        case .null: self = .null
        case .bool: self = .bool(document.bool(index) ?? false)
        case .string: self = .string(document.string(index))
        case .number:
            if let i = document.int64(index) { self = .int(i) } else { self = .double(document.double(index) ?? 0) }
        case .array: self = .array(document.elements(index).map { JSONValue(document, $0) })
        case .object:
            var object = JSONObject()
            for (key, value) in document.members(index) {
                let name = document.string(key)
                // With duplicate keys the first wins, as the daemon reads them.
                if object[name] == nil { object[name] = JSONValue(document, value) }
            }
            self = .object(object)
        }
    }
}

/// An object's members in the order they were written or added.
public struct JSONObject: Equatable, Sendable, Sequence {
    public private(set) var members: [(key: String, value: JSONValue)] = []

    public init() {}

    public init(_ members: [(String, JSONValue)]) {
        for (key, value) in members { self[key] = value }
    }

    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    /// Setting nil removes the member; setting an existing key keeps its place.
    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            let at = members.firstIndex { $0.key == key }
            switch (at, newValue) {
            case let (at?, value?): members[at].value = value
            case let (at?, nil): members.remove(at: at)
            case let (nil, value?): members.append((key, value))
            case (nil, nil): break
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { members.makeIterator() }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { compactText }
}
