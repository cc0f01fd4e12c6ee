/// The escape forms serde_json writes.
package enum JSONEscape {
    /// Quotes, backslashes and control characters must be escaped; nothing else is.
    @inline(__always)
    package static func needed(_ b: UInt8) -> Bool {
        b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\")
    }

    /// The letter of a two-character escape (\n etc.), or 0 if `b` has none.
    @inline(__always)
    package static func shortForm(_ b: UInt8) -> UInt8 {
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): return b
        case 0x0A: return UInt8(ascii: "n")
        case 0x0D: return UInt8(ascii: "r")
        case 0x09: return UInt8(ascii: "t")
        case 0x08: return UInt8(ascii: "b")
        case 0x0C: return UInt8(ascii: "f")
        default: return 0
        }
    }

    /// Writes `bytes` at `out`, each byte that needs it escaped (no quotes around); returns the
    /// count written, at most 6 a byte.
    @inline(__always)
    package static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        for b in bytes {
            if needed(b) {
                n += write(b, to: out + n)
            } else {
                out[n] = b
                n += 1
            }
        }
        return n
    }

    /// Writes the escape for `b` (a quote, backslash or control character); returns its length.
    package static func write(_ b: UInt8, to out: UnsafeMutablePointer<UInt8>) -> Int {
        out[0] = UInt8(ascii: "\\")
        let letter = shortForm(b)
        if letter != 0 {
            out[1] = letter
            return 2
        }
        let hex: StaticString = "0123456789abcdef"
        out[1] = UInt8(ascii: "u")
        out[2] = UInt8(ascii: "0")
        out[3] = UInt8(ascii: "0")
        out[4] = hex.utf8Start[Int(b >> 4)]
        out[5] = hex.utf8Start[Int(b & 0xF)]
        return 6
    }
}
