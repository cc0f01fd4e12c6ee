/// A UUID as two integers: cheap to hash, compare and store. Ordering is by value,
/// which is also the order of the lowercase string forms.
package struct UUID128: Hashable, Comparable, CustomStringConvertible {
    /// The first 8 bytes (as in the string form), big-endian.
    package var hi: UInt64
    /// The last 8 bytes, big-endian.
    package var lo: UInt64

    package init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    /// Parses hyphenated (8-4-4-4-12, 36 chars) or simple (32 hex digits) forms, also
    /// wrapped as "{...}" or "urn:uuid:..."; hex digits in either case. nil if invalid.
    package init?(parsing bytes: UnsafeRawBufferPointer) {
        let parsed: UUID128?
        switch bytes.count {
        case 32:
            parsed = UUID128.parseHex(bytes, from: 0, hyphenated: false)
        case 36:
            parsed = UUID128.parseHex(bytes, from: 0, hyphenated: true)
        case 38 where bytes[0] == UInt8(ascii: "{") && bytes[37] == UInt8(ascii: "}"):
            parsed = UUID128.parseHex(bytes, from: 1, hyphenated: true)
        case 45 where UUID128.hasURNPrefix(bytes):
            parsed = UUID128.parseHex(bytes, from: 9, hyphenated: true)
        default:
            parsed = nil
        }
        guard let parsed else { return nil }
        self = parsed
    }

    package init?(_ string: String) {
        var string = string
        guard let parsed = string.withUTF8({ UUID128(parsing: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    /// Lowercase hyphenated.
    package var string: String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            write(to: buffer.baseAddress!)
            return 36
        }
    }

    package var description: String { string }

    /// Appends the 36-byte lowercase hyphenated form, without quotes.
    package func append(to out: inout [UInt8]) {
        out.appendWriting(maxCount: 36) { buffer in
            write(to: buffer)
            return 36
        }
    }

    package static func < (a: UUID128, b: UUID128) -> Bool {
        (a.hi, a.lo) < (b.hi, b.lo)
    }

    /// Writes the 36-byte lowercase hyphenated form at `out`: two hex digits per byte from a
    /// 512-byte table, unrolled, the hyphens at their fixed places.
    package func write(to out: UnsafeMutablePointer<UInt8>) {
        let table = UUID128.hexPairs.utf8Start
        @inline(__always) func pair(_ word: UInt64, _ shift: UInt64, _ at: Int) {
            let byte = Int(truncatingIfNeeded: word &>> shift) & 0xFF
            out[at] = table[byte &* 2]
            out[at &+ 1] = table[byte &* 2 &+ 1]
        }
        let dash = UInt8(ascii: "-")
        pair(hi, 56, 0); pair(hi, 48, 2); pair(hi, 40, 4); pair(hi, 32, 6)
        out[8] = dash
        pair(hi, 24, 9); pair(hi, 16, 11)
        out[13] = dash
        pair(hi, 8, 14); pair(hi, 0, 16)
        out[18] = dash
        pair(lo, 56, 19); pair(lo, 48, 21)
        out[23] = dash
        pair(lo, 40, 24); pair(lo, 32, 26); pair(lo, 24, 28); pair(lo, 16, 30); pair(lo, 8, 32); pair(lo, 0, 34)
    }

    private static let hexPairs: StaticString = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

    /// A hex digit's value plus 0x41 ("A".."P") for each byte value, "@" for any byte that is
    /// not a hex digit: a lookup instead of two range tests per digit.
    private static let hexValues: StaticString = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ABCDEFGHIJ@@@@@@@KLMNOP@@@@@@@@@@@@@@@@@@@@@@@@@@KLMNOP@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"

    /// 32 hex digits starting at `offset`, with hyphens exactly at the 8-4-4-4-12
    /// boundaries if `hyphenated` (the caller has checked the total length).
    private static func parseHex(_ bytes: UnsafeRawBufferPointer, from offset: Int, hyphenated: Bool) -> UUID128? {
        guard hyphenated else {
            guard let hi = hexRun(bytes, offset, 16), let lo = hexRun(bytes, offset + 16, 16) else { return nil }
            return UUID128(hi: hi, lo: lo)
        }
        let dash = UInt8(ascii: "-")
        guard bytes[offset + 8] == dash, bytes[offset + 13] == dash,
              bytes[offset + 18] == dash, bytes[offset + 23] == dash,
              let a = hexRun(bytes, offset, 8), let b = hexRun(bytes, offset + 9, 4),
              let c = hexRun(bytes, offset + 14, 4), let d = hexRun(bytes, offset + 19, 4),
              let e = hexRun(bytes, offset + 24, 12)
        else { return nil }
        return UUID128(hi: a << 32 | b << 16 | c, lo: d << 48 | e)
    }

    /// The value of `count` (at most 16) hex digits at `offset`, or nil if any is not one.
    @inline(__always)
    private static func hexRun(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UInt64? {
        let values = hexValues.utf8Start
        var value: UInt64 = 0
        var invalid: UInt8 = 0
        for i in offset ..< offset + count {
            let digit = values[Int(bytes[i])] &- 0x41   // 0xFF for a byte that is not a hex digit
            invalid |= digit
            value = value << 4 | UInt64(digit & 0x0F)
        }
        return invalid & 0xF0 == 0 ? value : nil
    }

    private static func hasURNPrefix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let prefix: StaticString = "urn:uuid:"
        for k in 0 ..< 9 {
            let b = bytes[k]
            let lowered = b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
            if lowered != prefix.utf8Start[k] { return false }
        }
        return true
    }
}
