import Glibc

// Byte-level helpers for building requests and reading answers without Foundation or String.

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }

    /// Appends a non-negative integer in decimal.
    mutating func appendDecimal(_ value: Int) {
        if value < 10 {
            append(UInt8(48 + value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes of scratch, no allocation
        var count = 0
        var rest = value
        Swift.withUnsafeMutableBytes(of: &digits) { scratch in
            while rest > 0 {
                scratch[23 - count] = UInt8(48 + rest % 10)
                rest /= 10
                count += 1
            }
            append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[(24 - count)...]))
        }
    }
}

/// The bytes of a String, for building constant parts once.
@inline(__always)
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension UnsafeRawBufferPointer {
    /// Offset of the first occurrence of `needle` (not empty) at or after `start`, or nil.
    /// memchr for the first byte, memcmp for the rest (Glibc's memmem is not exported to Swift).
    @inline(__always)
    func find(_ needle: [UInt8], from start: Int = 0) -> Int? {
        guard let base = baseAddress else { return nil }
        return needle.withUnsafeBytes { pattern -> Int? in
            let first = Int32(pattern[0])
            let last = count - pattern.count
            var offset = start
            while offset <= last {
                guard let hit = memchr(base + offset, first, last - offset + 1) else { return nil }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, pattern.baseAddress!, pattern.count) == 0 { return at }
                offset = at + 1
            }
            return nil
        }
    }

    @inline(__always)
    func hasPrefix(_ prefix: [UInt8]) -> Bool {
        guard count >= prefix.count else { return false }
        return prefix.withUnsafeBytes { memcmp(baseAddress!, $0.baseAddress!, prefix.count) == 0 }
    }

    @inline(__always)
    func hasSuffix(_ suffix: [UInt8]) -> Bool {
        guard count >= suffix.count else { return false }
        return suffix.withUnsafeBytes { memcmp(baseAddress! + (count - suffix.count), $0.baseAddress!, suffix.count) == 0 }
    }

    /// Copies the JSON string that follows the first `key` (which ends with its opening quote, e.g.
    /// `"lease_id":"`) into `destination`, appending. Returns false when the key is absent.
    @inline(__always)
    func appendStringValue(after key: [UInt8], to destination: inout [UInt8], from start: Int = 0) -> Bool {
        guard let at = find(key, from: start) else { return false }
        var end = at + key.count
        let first = end
        while end < count && self[end] != UInt8(ascii: "\"") { end += 1 }
        destination.append(contentsOf: UnsafeRawBufferPointer(rebasing: self[first..<end]))
        return true
    }

    /// A line as text, for error messages (answers are UTF-8).
    var text: String { String(decoding: self, as: UTF8.self) }
}
