// Integration test support: a small read-only view over Foundation JSON values.
//
// The names carry an `IT` prefix on purpose: this test target also holds unit tests that
// `@testable import agentd`, and a type of ours named like one of the daemon's would shadow
// it in their files.

import Foundation

/// Errors raised by the integration support layer; thrown out of a test they fail it with
/// the message.
struct ITError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A JSON value as decoded by JSONSerialization, or the absence of one (`value == nil`):
/// subscripting a missing key gives a missing value, not a crash, so that tests can say
/// `response["id"].exists` and `response["result"].isNull` apart.
struct ITJSON: CustomStringConvertible {
    let value: Any?

    init(_ value: Any?) { self.value = value }

    static func parse(_ bytes: [UInt8]) throws -> ITJSON {
        do {
            return ITJSON(try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]))
        } catch {
            throw ITError("not JSON (\(bytes.count) bytes; \(error)): \(String(decoding: bytes.prefix(2000), as: UTF8.self))")
        }
    }

    static func parse(_ text: String) throws -> ITJSON { try parse(Array(text.utf8)) }

    subscript(key: String) -> ITJSON {
        guard let object = value as? [String: Any] else { return ITJSON(nil) }
        return ITJSON(object[key])
    }

    subscript(index: Int) -> ITJSON {
        guard let array = value as? [Any], index >= 0, index < array.count else { return ITJSON(nil) }
        return ITJSON(array[index])
    }

    var exists: Bool { value != nil }
    var isNull: Bool { value is NSNull }
    var string: String? { value as? String }
    var object: [String: Any]? { value as? [String: Any] }
    var keys: Set<String> { Set(object?.keys.map { $0 } ?? []) }
    var array: [ITJSON]? { (value as? [Any]).map { $0.map(ITJSON.init) } }
    var count: Int { (value as? [Any])?.count ?? object?.count ?? 0 }

    /// An integer, and only an integer: `true` and `1.5` are not.
    var int: Int? {
        guard value is NSNumber, let text = canonicalOrNil,
              !text.isEmpty, text.allSatisfy({ $0 == "-" || $0.isNumber }) else { return nil }
        return Int(text)
    }

    var bool: Bool? {
        switch canonicalOrNil {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }

    /// Compact JSON with sorted keys: two values are equal as JSON iff their canonical
    /// texts are equal. A missing value is "<missing>".
    var canonical: String { canonicalOrNil ?? "<missing>" }

    private var canonicalOrNil: String? {
        guard let value else { return nil }
        // Wrap in an array: top-level fragments are not accepted by every Foundation.
        guard let data = try? JSONSerialization.data(
            withJSONObject: [value], options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        return String(text.dropFirst().dropLast())
    }

    var description: String { canonical }
}

/// Serialise a Foundation value (dictionaries, arrays, strings, Int, Double, Bool, NSNull)
/// to compact JSON text.
func itJSONText(_ value: Any) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .withoutEscapingSlashes]) else {
        return "<unserialisable \(value)>"
    }
    let text = String(decoding: data, as: UTF8.self)
    return String(text.dropFirst().dropLast())
}

/// The canonical text of a JSON literal written in a test, for comparisons with
/// `ITJSON.canonical`.
func itCanonical(_ jsonText: String) -> String {
    (try? ITJSON.parse(jsonText))?.canonical ?? "<bad literal \(jsonText)>"
}

/// A fresh lowercase UUID v4 string.
func itUUID() -> String { UUID().uuidString.lowercased() }

/// True when `text` has the shape YYYY-MM-DDTHH:MM:SS.sssZ.
func itIsISOMillis(_ text: String?) -> Bool {
    guard let text else { return false }
    let pattern = Array("dddd-dd-ddTdd:dd:dd.dddZ")
    let chars = Array(text)
    guard chars.count == pattern.count else { return false }
    for (c, p) in zip(chars, pattern) {
        if p == "d" { if !("0"..."9").contains(c) { return false } } else if c != p { return false }
    }
    return true
}
