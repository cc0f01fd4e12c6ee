#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes JSON at a raw pointer, for an answer composed in one piece and appended to the output
/// with a single copy (`appendComposed`). Every `Array.append` pays uniqueness and capacity
/// checks and a generic copy, about a hundred instructions however small the piece, and an
/// answer is a few dozen pieces. No single write is checked against the room left: the caller
/// reserves room for the most it can write (`appendComposed`'s `maxCount`), so that bound must
/// count every byte the composition can take. `appendComposed` stops the process when a
/// composition went past it, rather than send what the overrun left.
package struct JSONCursor {
    package private(set) var position: UnsafeMutablePointer<UInt8>

    package init(_ start: UnsafeMutablePointer<UInt8>) { position = start }

    /// The most a string can take: quotes, and every byte escaped as \u00xx.
    @inline(__always)
    package static func maxBytes(_ s: String) -> Int { s.utf8.count * 6 + 2 }

    @inline(__always)
    package mutating func byte(_ b: UInt8) {
        position.pointee = b
        position += 1
    }

    /// Raw bytes of a literal, e.g. `ascii(",\"owner\":")`.
    @inline(__always)
    package mutating func ascii(_ s: StaticString) {
        memcpy(position, s.utf8Start, s.utf8CodeUnitCount)
        position += s.utf8CodeUnitCount
    }

    /// Bytes that are already JSON (a payload kept as the client sent it).
    @inline(__always)
    package mutating func raw(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { if let base = $0.baseAddress { memcpy(position, base, $0.count) } }
        position += bytes.count
    }

    package mutating func int(_ v: Int64) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        position += JSONDigits.writeDecimal(v.magnitude, to: position)
    }

    package mutating func optionalInt(_ v: Int64?) {
        if let v { int(v) } else { ascii("null") }
    }

    package mutating func quotedUUID(_ id: UUID128) {
        position[0] = UInt8(ascii: "\"")
        id.write(to: position + 1)
        position[37] = UInt8(ascii: "\"")
        position += 38
    }

    /// A quoted ISO timestamp (ISOTime), at most `ISOTime.maxBytes + 2` bytes.
    package mutating func isoString(unixMs: Int64) {
        position[0] = UInt8(ascii: "\"")
        let n = ISOTime.write(unixMs: unixMs, to: position + 1)
        position[n + 1] = UInt8(ascii: "\"")
        position += n + 2
    }

    package mutating func optionalUUID(_ id: UUID128?) {
        if let id { quotedUUID(id) } else { ascii("null") }
    }

    /// `s` quoted and escaped as `[UInt8].appendJSONString` does.
    package mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { bytes in
            position[0] = UInt8(ascii: "\"")
            let n = 1 + JSONEscape.writeEscaped(bytes, to: position + 1)
            position[n] = UInt8(ascii: "\"")
            position += n + 1
        }
    }

    package mutating func optionalString(_ s: String?) {
        if let s { string(s) } else { ascii("null") }
    }
}

extension Array where Element == UInt8 {
    /// Lets `body` compose up to `maxCount` bytes with a cursor and appends what it wrote in
    /// one copy (from the stack up to 1 KB, the usual case).
    @inline(__always)
    package mutating func appendComposed(maxCount: Int, _ body: (inout JSONCursor) -> Void) {
        if maxCount <= 1024 {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { scratch in
                var cursor = JSONCursor(scratch.baseAddress!)
                body(&cursor)
                precondition(cursor.position - scratch.baseAddress! <= maxCount, "composed past its bound of \(maxCount) bytes")
                append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress!, count: cursor.position - scratch.baseAddress!))
            }
        } else {
            appendWriting(maxCount: maxCount) { start in
                var cursor = JSONCursor(start)
                body(&cursor)
                precondition(cursor.position - start <= maxCount, "composed past its bound of \(maxCount) bytes")
                return cursor.position - start
            }
        }
    }
}
