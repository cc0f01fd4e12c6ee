/// Reading string values. Strings without escapes are used straight from the source
/// bytes; only escaped ones go through `JSONStringDecoder`.
extension JSONDocument {
    /// The decoded string (escapes resolved). Precondition: the token is a string.
    func string(_ index: Int) -> String {
        let contents = rawStringContents(index)
        if !stringHasEscapes(index) {
            return String(decoding: contents, as: UTF8.self)
        }
        // Decoding never makes a string longer than its escaped source.
        return String(unsafeUninitializedCapacity: contents.count) { buffer in
            JSONStringDecoder.decode(contents, into: buffer.baseAddress!)
        }
    }

    /// The decoded string, or nil if the token is not a string.
    func stringValue(_ index: Int) -> String? {
        kind(index) == .string ? string(index) : nil
    }

    /// Appends the decoded UTF-8 bytes (escapes resolved). Precondition: a string token.
    func stringBytes(_ index: Int, into out: inout [UInt8]) {
        let contents = rawStringContents(index)
        if !stringHasEscapes(index) {
            out.append(contentsOf: contents)
            return
        }
        withDecodedBytes(contents) { out.append(contentsOf: $0) }
    }

    /// True if the token is a string whose decoded value equals `literal`.
    func stringEquals(_ index: Int, _ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { stringEquals(index, bytes: UnsafeRawBufferPointer($0)) }
    }

    func stringEquals(_ index: Int, _ other: String) -> Bool {
        var other = other
        return other.withUTF8 { stringEquals(index, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// True if the token is a string whose decoded UTF-8 equals `bytes`.
    func stringEquals(_ index: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        let t = tape.tokens[index]
        guard t.kind == .string else { return false }
        let contents = UnsafeRawBufferPointer(rebasing: input[Int(t.start) ..< Int(t.end)])
        if t.count == 0 {
            return contents.count == bytes.count
                && (bytes.isEmpty || bytesEqual(contents.baseAddress!, bytes.baseAddress!, count: bytes.count))
        }
        // Decoding only ever shortens a string, so a shorter source cannot match.
        guard contents.count >= bytes.count else { return false }
        return withDecodedBytes(contents) { decoded in
            decoded.count == bytes.count
                && (bytes.isEmpty || bytesEqual(decoded.baseAddress!, bytes.baseAddress!, count: bytes.count))
        }
    }

    private func withDecodedBytes<R>(_ contents: UnsafeRawBufferPointer,
                                     _ body: (UnsafeRawBufferPointer) -> R) -> R {
        // Stack memory for ordinary sizes; the standard library moves big ones to the heap.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: contents.count) { buffer in
            let n = JSONStringDecoder.decode(contents, into: buffer.baseAddress!)
            return body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
        }
    }
}

/// Resolves the escapes of a string the parser has already validated, so it can
/// trust every escape to be well formed and every surrogate to be paired.
enum JSONStringDecoder {
    /// Writes the decoded UTF-8 of `source` (the bytes between the quotes) to `out`,
    /// which must have room for `source.count` bytes; returns the bytes written.
    static func decode(_ source: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var i = 0
        var n = 0
        let count = source.count
        while i < count {
            let b = source[i]
            if b != UInt8(ascii: "\\") {
                out[n] = b
                n += 1
                i += 1
                continue
            }
            let e = source[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out[n] = 0x08
            case UInt8(ascii: "f"): out[n] = 0x0C
            case UInt8(ascii: "n"): out[n] = 0x0A
            case UInt8(ascii: "r"): out[n] = 0x0D
            case UInt8(ascii: "t"): out[n] = 0x09
            case UInt8(ascii: "u"):
                var scalar = hexQuad(source, at: i)
                i += 4
                if scalar & 0xFC00 == 0xD800 {
                    // The parser guaranteed "\uDCxx" follows.
                    let low = hexQuad(source, at: i + 2)
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                n += appendUTF8(scalar, to: out + n)
                continue
            default: out[n] = e  // \" \\ \/
            }
            n += 1
        }
        return n
    }

    private static func hexQuad(_ source: UnsafeRawBufferPointer, at i: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in i ..< i + 4 {
            value = value << 4 | UInt32(hexDigitValue(source[k]) ?? 0)
        }
        return value
    }

    /// Encodes a Unicode scalar value as UTF-8; returns the byte count (1 to 4).
    @inline(__always)
    private static func appendUTF8(_ v: UInt32, to out: UnsafeMutablePointer<UInt8>) -> Int {
        switch v {
        case 0 ..< 0x80:
            out[0] = UInt8(v)
            return 1
        case 0x80 ..< 0x800:
            out[0] = UInt8(0xC0 | v >> 6)
            out[1] = UInt8(0x80 | v & 0x3F)
            return 2
        case 0x800 ..< 0x10000:
            out[0] = UInt8(0xE0 | v >> 12)
            out[1] = UInt8(0x80 | v >> 6 & 0x3F)
            out[2] = UInt8(0x80 | v & 0x3F)
            return 3
        default:
            out[0] = UInt8(0xF0 | v >> 18)
            out[1] = UInt8(0x80 | v >> 12 & 0x3F)
            out[2] = UInt8(0x80 | v >> 6 & 0x3F)
            out[3] = UInt8(0x80 | v & 0x3F)
            return 4
        }
    }
}
