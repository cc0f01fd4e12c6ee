/// Building JSON output straight into a byte buffer (answers and stored rows),
/// without intermediate Strings.
extension Array where Element == UInt8 {
    /// Appends raw bytes with a single copy.
    @inline(__always)
    package mutating func appendRawBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // The memory holds bytes; viewing it typed lets append use its memcpy path.
        append(contentsOf: UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }

    /// Lets `body` write up to `maxCount` bytes and appends the number it reports
    /// written. Every Array append pays uniqueness and capacity checks (several ns), so
    /// output is composed in raw memory and appended once: small output via a stack
    /// scratch buffer and a single copy, large output in place (one zero-filled growth
    /// and one trim, cheaper than a second pass of copying).
    @inline(__always)
    package mutating func appendWriting(maxCount: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        if maxCount <= 256 {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { scratch in
                let written = body(scratch.baseAddress!)
                append(contentsOf: UnsafeBufferPointer(rebasing: scratch[0 ..< written]))
            }
        } else {
            let oldCount = count
            append(contentsOf: repeatElement(0, count: maxCount))
            let written = withUnsafeMutableBufferPointer { body($0.baseAddress! + oldCount) }
            if written < maxCount { removeLast(maxCount - written) }
        }
    }

    /// Raw bytes of a literal, e.g. `appendASCII("{\"ok\":true}")`.
    @inline(__always)
    package mutating func appendASCII(_ s: StaticString) {
        s.withUTF8Buffer { append(contentsOf: $0) }
    }

    package mutating func appendBytes(_ b: [UInt8]) {
        append(contentsOf: b)
    }

    /// `s` quoted and escaped the way serde_json does: \" \\ \n \r \t \b \f, other
    /// control characters as \u00xx, everything else (including non-ASCII) as is.
    package mutating func appendJSONString(_ s: String) {
        var s = s
        s.withUTF8 { appendJSONString(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Same, from UTF-8 bytes the caller knows to be valid.
    package mutating func appendJSONString(bytes: UnsafeRawBufferPointer) {
        // Measure first, then write everything in place in one go.
        var escapedCount = bytes.count + 2
        for b in bytes where JSONEscape.needed(b) {
            escapedCount += b < 0x20 && JSONEscape.shortForm(b) == 0 ? 5 : 1
        }
        appendWriting(maxCount: escapedCount) { out in
            out[0] = UInt8(ascii: "\"")
            var n = 1
            if escapedCount == bytes.count + 2 {
                if let base = bytes.baseAddress {
                    UnsafeMutableRawPointer(out + 1).copyMemory(from: base, byteCount: bytes.count)
                }
                n += bytes.count
            } else {
                n += JSONEscape.writeEscaped(bytes.assumingMemoryBound(to: UInt8.self), to: out + n)
            }
            out[n] = UInt8(ascii: "\"")
            return n + 1
        }
    }

    /// Decimal digits of `v`, two at a time from a table; no String is made.
    package mutating func appendJSONInt(_ v: Int64) {
        appendComposed(maxCount: 20) { $0.int(v) }  // "-9223372036854775808" is 20 bytes
    }
}
