/// Wire timestamps: "YYYY-MM-DDTHH:MM:SS.sssZ" (UTC, milliseconds) to and from Unix
/// milliseconds, with the proleptic Gregorian calendar done in integer arithmetic
/// (Howard Hinnant's days-from-civil algorithms), so no Foundation and no time zones.
package enum ISOTime {
    private static let msPerDay: Int64 = 86_400_000

    /// The most `write` writes (a year of Int64's range, and a sign).
    package static let maxBytes = 40

    /// Appends e.g. "2024-02-29T12:34:56.789Z". Years outside 0...9999 get more digits
    /// or a minus sign and so are not strictly RFC 3339.
    package static func append(unixMs: Int64, to out: inout [UInt8]) {
        out.appendWriting(maxCount: maxBytes) { write(unixMs: unixMs, to: $0) }
    }

    /// Writes the same at `p` (room for `maxBytes`); returns the length.
    package static func write(unixMs: Int64, to p: UnsafeMutablePointer<UInt8>) -> Int {
        // Floor division, so instants before 1970 land on the right day.
        var days = unixMs / msPerDay
        var msOfDay = Int(unixMs % msPerDay)
        if msOfDay < 0 {
            days -= 1
            msOfDay += Int(msPerDay)
        }
        let (year, month, day) = civil(fromDays: days)
        var n = 0
        if year < 0 {
            p[0] = UInt8(ascii: "-")
            n = 1
        }
        if year.magnitude < 10_000 {
            JSONDigits.writeDecimal(Int(year.magnitude), width: 4, to: p + n)
            n += 4
        } else {
            n += JSONDigits.writeDecimal(year.magnitude, to: p + n)
        }
        func put(_ separator: Unicode.Scalar, _ value: Int, width: Int) {
            p[n] = UInt8(ascii: separator)
            JSONDigits.writeDecimal(value, width: width, to: p + n + 1)
            n += 1 + width
        }
        put("-", Int(month), width: 2)
        put("-", Int(day), width: 2)
        put("T", msOfDay / 3_600_000, width: 2)
        put(":", msOfDay / 60_000 % 60, width: 2)
        put(":", msOfDay / 1000 % 60, width: 2)
        put(".", msOfDay % 1000, width: 3)
        p[n] = UInt8(ascii: "Z")
        return n + 1
    }

    package static func string(unixMs: Int64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        append(unixMs: unixMs, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    package static func parse(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { parse(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Accepts "YYYY-MM-DDTHH:MM:SS", then optionally "." and 1 to 9 fraction digits,
    /// then "Z" or an offset "+HH:MM"/"-HH:MM" ('T' and 'Z' in either case, as RFC 3339
    /// allows). Fraction digits beyond milliseconds are truncated (as chrono's
    /// timestamp_millis does), never rounded. Leap seconds (":60") are refused.
    package static func parse(bytes: UnsafeRawBufferPointer) -> Int64? {
        var reader = DigitReader(bytes: bytes)
        guard let year = reader.number(4), reader.skip("-"),
              let month = reader.number(2), reader.skip("-"),
              let day = reader.number(2), reader.skip("T") || reader.skip("t"),
              let hour = reader.number(2), reader.skip(":"),
              let minute = reader.number(2), reader.skip(":"),
              let second = reader.number(2)
        else { return nil }
        guard (1 ... 12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 60 else { return nil }

        var millis: Int64 = 0
        if reader.skip(".") {
            var digits = 0
            while let d = reader.number(1) {
                digits += 1
                if digits <= 3 { millis = millis * 10 + d }
            }
            guard (1 ... 9).contains(digits) else { return nil }
            for _ in min(digits, 3) ..< 3 { millis *= 10 }  // ".5" is 500 ms
        }

        var offsetSeconds: Int64 = 0
        let isUTC = reader.skip("Z") || reader.skip("z")
        if !isUTC {
            let sign: Int64
            if reader.skip("+") { sign = 1 } else if reader.skip("-") { sign = -1 } else { return nil }
            guard let oh = reader.number(2), reader.skip(":"), let om = reader.number(2),
                  oh < 24, om < 60 else { return nil }
            offsetSeconds = sign * (oh * 3600 + om * 60)
        }
        guard reader.atEnd else { return nil }

        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return seconds * 1000 + millis
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date. Works in 400-year eras
    /// that start on March 1st, so the leap day is the last day of an era's year.
    package static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of `daysFromCivil`.
    package static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// A cursor over ASCII text for fixed-width fields.
private struct DigitReader {
    package let bytes: UnsafeRawBufferPointer
    package var i = 0

    package var atEnd: Bool { i == bytes.count }

    /// Exactly `width` decimal digits, or nil (and nothing consumed).
    package mutating func number(_ width: Int) -> Int64? {
        guard i + width <= bytes.count else { return nil }
        var value: Int64 = 0
        for k in i ..< i + width {
            let d = bytes[k] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            value = value * 10 + Int64(d)
        }
        i += width
        return value
    }

    package mutating func skip(_ c: Unicode.Scalar) -> Bool {
        guard i < bytes.count, bytes[i] == UInt8(ascii: c) else { return false }
        i += 1
        return true
    }
}
