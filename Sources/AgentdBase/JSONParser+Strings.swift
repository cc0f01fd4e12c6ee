/// String scanning: finds the closing quote while validating escapes, control
/// characters and UTF-8. Nothing is decoded here; decoding happens on demand in
/// `JSONDocument`, and only for strings a caller actually reads.
extension JSONParser {
    /// `pos` is at the opening quote; leaves `pos` just past the closing quote.
    package mutating func parseString() throws(JSONError) {
        let start = pos + 1
        var i = start
        var hasEscapes: Int32 = 0
        while true {
            i = skipPlainBytes(from: i)
            let b = byte(i)
            if b == UInt8(ascii: "\"") { break }
            if b == UInt8(ascii: "\\") {
                hasEscapes = 1
                i = try scanEscape(at: i)
            } else if b >= 0x80 {
                i = try scanUTF8Sequence(at: i)
            } else if i >= length {
                throw JSONError(message: "unterminated string starting at column \(pos + 1)")
            } else if b < 0x20 {
                throw JSONError(message: "control character in string at column \(i + 1)")
            } else {
                i += 1
            }
        }
        tokens.append(JSONTape.Token(
            kind: .string, start: offset(start), end: offset(i),
            next: offset(tokens.count + 1), count: hasEscapes))
        pos = i + 1
    }

    /// Skips 8 bytes at a time while none of them is a quote, a backslash, a control
    /// character or non-ASCII, and returns the offset of the first byte that might be
    /// (the scalar loop in `parseString` takes it from there).
    @inline(__always)
    private func skipPlainBytes(from start: Int) -> Int {
        var i = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while i + 8 <= length {
            let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            // The classic "has zero byte" test, (x - 0x01..) & ~x & 0x80.., flags exactly
            // the bytes from the first hit upward, so the lowest flag is the first hit.
            let quote = w ^ (ones &* 0x22)
            let slash = w ^ (ones &* 0x5C)
            let special = ((quote &- ones) & ~quote)
                | ((slash &- ones) & ~slash)
                | ((w &- ones &* 0x20) & ~w)  // bytes below 0x20
                | w                           // bytes at or above 0x80
            let hit = special & highs
            if hit != 0 { return i + hit.trailingZeroBitCount / 8 }
            i += 8
        }
        return i
    }

    /// `i` is at a backslash; returns the offset after the escape.
    private func scanEscape(at i: Int) throws(JSONError) -> Int {
        switch byte(i + 1) {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"),
             UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
             UInt8(ascii: "r"), UInt8(ascii: "t"):
            return i + 2
        case UInt8(ascii: "u"):
            let unit = try hexQuad(at: i + 2)
            if unit & 0xFC00 == 0xDC00 {
                throw JSONError(message: "unpaired surrogate in \\u escape at column \(i + 1)")
            }
            guard unit & 0xFC00 == 0xD800 else { return i + 6 }
            // A high surrogate must be followed at once by an escaped low surrogate,
            // otherwise the string could not be decoded to valid UTF-8 later.
            guard byte(i + 6) == UInt8(ascii: "\\"), byte(i + 7) == UInt8(ascii: "u"),
                  try hexQuad(at: i + 8) & 0xFC00 == 0xDC00 else {
                throw JSONError(message: "unpaired surrogate in \\u escape at column \(i + 1)")
            }
            return i + 12
        case 0 where i + 1 >= length:
            throw JSONError(message: "unterminated string at column \(i + 2)")
        default:
            throw JSONError(message: "invalid escape at column \(i + 1)")
        }
    }

    private func hexQuad(at i: Int) throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for k in i ..< i + 4 {
            guard let digit = JSONDigits.hexValue(byte(k)) else {
                throw JSONError(message: "invalid \\u escape at column \(k + 1)")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// `i` is at a byte >= 0x80; returns the offset after the (valid) sequence.
    @inline(__always)
    private func scanUTF8Sequence(at i: Int) throws(JSONError) -> Int {
        let length = utf8SequenceLength(at: i)
        if length == 0 { throw JSONError(message: "invalid UTF-8 at byte \(i)") }
        return i + length
    }

    /// Length of the well-formed UTF-8 sequence starting at `i` (Unicode Table 3-7),
    /// or 0 if it is ill-formed: stray continuation bytes, overlongs (C0, C1, E0 80..9F,
    /// F0 80..8F), surrogates (ED A0..BF), beyond U+10FFFF (F4 90.., F5..FF), or truncated.
    package func utf8SequenceLength(at i: Int) -> Int {
        @inline(__always) func inRange(_ k: Int, _ lo: UInt8, _ hi: UInt8) -> Bool {
            let b = byte(k)
            return b >= lo && b <= hi
        }
        switch byte(i) {
        case 0xC2...0xDF:
            return inRange(i + 1, 0x80, 0xBF) ? 2 : 0
        case 0xE0:
            return inRange(i + 1, 0xA0, 0xBF) && inRange(i + 2, 0x80, 0xBF) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return inRange(i + 1, 0x80, 0xBF) && inRange(i + 2, 0x80, 0xBF) ? 3 : 0
        case 0xED:
            return inRange(i + 1, 0x80, 0x9F) && inRange(i + 2, 0x80, 0xBF) ? 3 : 0
        case 0xF0:
            return inRange(i + 1, 0x90, 0xBF) && inRange(i + 2, 0x80, 0xBF)
                && inRange(i + 3, 0x80, 0xBF) ? 4 : 0
        case 0xF1...0xF3:
            return inRange(i + 1, 0x80, 0xBF) && inRange(i + 2, 0x80, 0xBF)
                && inRange(i + 3, 0x80, 0xBF) ? 4 : 0
        case 0xF4:
            return inRange(i + 1, 0x80, 0x8F) && inRange(i + 2, 0x80, 0xBF)
                && inRange(i + 3, 0x80, 0xBF) ? 4 : 0
        default:
            return 0
        }
    }
}
