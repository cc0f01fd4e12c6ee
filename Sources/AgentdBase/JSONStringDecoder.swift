/// Resolves the escapes of a string the parser has already validated, so it can
/// trust every escape to be well formed and every surrogate to be paired.
package enum JSONStringDecoder {
    /// Writes the decoded UTF-8 of `source` (the bytes between the quotes) to `out`,
    /// which must have room for `source.count` bytes; returns the bytes written.
    package static func decode(_ source: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) -> Int {
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
            value = value << 4 | UInt32(JSONDigits.hexValue(source[k]) ?? 0)
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
