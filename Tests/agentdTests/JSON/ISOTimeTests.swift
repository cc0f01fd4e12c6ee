import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class ISOTimeTests: XCTestCase {
    private let known: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),  // leap day
        (951_868_799_999, "2000-02-29T23:59:59.999Z"),    // leap day of a /400 year
        (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),
        (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),  // 2100 is not a leap year...
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),  // ...so March follows the 28th
        (-1, "1969-12-31T23:59:59.999Z"),
        (-14_182_940_000, "1969-07-20T20:17:40.000Z"),
        (5, "1970-01-01T00:00:00.005Z"),
        (50, "1970-01-01T00:00:00.050Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
    ]

    func testFormatting() {
        for (ms, text) in known {
            XCTAssertEqual(ISOTime.string(unixMs: ms), text)
            XCTAssertEqual(appendedText { ISOTime.append(unixMs: ms, to: &$0) }, text)
        }
    }

    func testParsingTheFormatRoundTrips() {
        for (ms, text) in known {
            XCTAssertEqual(ISOTime.parse(text), ms, text)
        }
    }

    func testParsingVariants() {
        XCTAssertEqual(ISOTime.parse("1970-01-01T00:00:01Z"), 1000)           // no fraction
        XCTAssertEqual(ISOTime.parse("1970-01-01T00:00:01.5Z"), 1500)         // 1 digit
        XCTAssertEqual(ISOTime.parse("1970-01-01T00:00:01.05Z"), 1050)
        XCTAssertEqual(ISOTime.parse("1970-01-01T00:00:01.123456789Z"), 1123) // 9 digits, truncated
        XCTAssertEqual(ISOTime.parse("1970-01-01T00:00:00.9999Z"), 999)       // truncated, not rounded up
        XCTAssertEqual(ISOTime.parse("1969-12-31T23:59:59.9999Z"), -1)
        XCTAssertEqual(ISOTime.parse("2024-02-29T12:34:56.789+00:00"), 1_709_210_096_789)
        XCTAssertEqual(ISOTime.parse("2024-02-29T12:34:56.789-00:00"), 1_709_210_096_789)
        XCTAssertEqual(ISOTime.parse("1970-01-01T01:00:00+01:00"), 0)
        XCTAssertEqual(ISOTime.parse("1969-12-31T19:30:00-04:30"), 0)
        XCTAssertEqual(ISOTime.parse("1970-01-01t00:00:00z"), 0)
    }

    func testParsingRejects() {
        let bad = [
            "", "1970-01-01", "1970-01-01T00:00:00", "1970-01-01 00:00:00Z", "1970-1-01T00:00:00Z",
            "1970-01-01T00:00:00.Z", "1970-01-01T00:00:00.1234567890Z", "1970-01-01T00:00:00ZZ",
            "1970-13-01T00:00:00Z", "1970-00-01T00:00:00Z", "1970-01-32T00:00:00Z", "1970-01-00T00:00:00Z",
            "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
            "1970-01-01T24:00:00Z", "1970-01-01T00:60:00Z", "1970-01-01T00:00:60Z",
            "1970-01-01T00:00:00+0000", "1970-01-01T00:00:00+24:00", "+1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00 Z", " 1970-01-01T00:00:00Z", "197a-01-01T00:00:00Z",
        ]
        for text in bad {
            XCTAssertNil(ISOTime.parse(text), text)
        }
        XCTAssertEqual(ISOTime.parse("2000-02-29T00:00:00Z"), 951_782_400_000)
    }

    func testDayArithmeticAgreesBothWays() {
        var day: Int64 = -800_000
        while day < 800_000 {
            let (y, m, d) = ISOTime.civil(fromDays: day)
            XCTAssertEqual(ISOTime.daysFromCivil(year: y, month: m, day: d), day)
            day += 997
        }
    }
}
