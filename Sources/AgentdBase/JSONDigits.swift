/// Digit conversions shared by the parser, the writers, UUIDs and timestamps.
package enum JSONDigits {
    /// Writes the decimal digits of `value` (at most 20) to `out`; returns how many.
    /// Two digits per division, from a table.
    package static func writeDecimal(_ value: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        // "00" "01" ... "99": the two digits of every value below 100.
        let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
        let table = pairs.utf8Start
        var length = 1
        var probe = value
        while probe >= 10 {
            probe /= 10
            length += 1
        }
        var v = value
        var i = length
        while v >= 100 {
            let r = Int(v % 100) * 2
            v /= 100
            i -= 2
            out[i] = table[r]
            out[i + 1] = table[r + 1]
        }
        if v >= 10 {
            out[0] = table[Int(v) * 2]
            out[1] = table[Int(v) * 2 + 1]
        } else {
            out[0] = UInt8(ascii: "0") + UInt8(v)
        }
        return length
    }

    /// Writes `value` zero-padded to exactly `width` digits (it must fit).
    @inline(__always)
    package static func writeDecimal(_ value: Int, width: Int, to out: UnsafeMutablePointer<UInt8>) {
        var v = value
        var i = width
        while i > 0 {
            i -= 1
            out[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
    }

    /// 0...15 for an ASCII hex digit in either case, else nil.
    @inline(__always)
    package static func hexValue(_ c: UInt8) -> UInt8? {
        let digit = c &- UInt8(ascii: "0")
        if digit < 10 { return digit }
        let letter = (c | 0x20) &- UInt8(ascii: "a")  // | 0x20 folds A-F onto a-f
        if letter < 6 { return letter + 10 }
        return nil
    }
}
