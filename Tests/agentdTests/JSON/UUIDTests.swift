import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class UUIDTests: XCTestCase {
    private let lower = "0123abcd-4567-89ef-fedc-ba9876543210"
    private let expected = UUID128(hi: 0x0123_ABCD_4567_89EF, lo: 0xFEDC_BA98_7654_3210)

    func testParsesEveryForm() {
        let forms = [
            lower,
            lower.uppercased(),
            "0123ABCD-4567-89ef-FEDC-ba9876543210",
            lower.replacingOccurrences(of: "-", with: ""),
            lower.uppercased().replacingOccurrences(of: "-", with: ""),
            "{" + lower + "}",
            "urn:uuid:" + lower,
            "URN:UUID:" + lower.uppercased(),
        ]
        for form in forms {
            XCTAssertEqual(UUID128(form), expected, form)
            let viaBytes = Array(form.utf8).withUnsafeBytes { UUID128(parsing: $0) }
            XCTAssertEqual(viaBytes, expected, form)
        }
    }

    func testFromDocument() throws {
        try withJSONDocument(#"["\#(lower)", "\u0030123abcd-4567-89ef-fedc-ba9876543210", "nope", 5]"#) { doc in
            let e = Array(doc.elements(doc.root))
            XCTAssertEqual(doc.uuid(e[0]), expected)
            XCTAssertEqual(doc.uuid(e[1]), expected)  // escapes resolved first
            XCTAssertNil(doc.uuid(e[2]))
            XCTAssertNil(doc.uuid(e[3]))
        }
    }

    func testRefusesInvalid() {
        let bad = [
            "", "0123abcd-4567-89ef-fedc-ba987654321",     // short
            "0123abcd-4567-89ef-fedc-ba98765432100",       // long
            "0123abcd-4567-89ef-fedc-ba987654321g",        // non-hex
            "0123abcd-4567-89ef-fedc-ba98765432 0",
            "0123abc-d4567-89ef-fedc-ba9876543210",        // misplaced hyphen
            "0123abcd-456789ef--fedc-ba9876543210",
            "0123abcd_4567_89ef_fedc_ba9876543210",
            "0123abcd4567-89ef-fedc-ba9876543210-",
            "0123abcd-4567-89ef-fedc-ba98765432-0",
            "0123abcd4567-89effedcba9876543210",           // partial hyphens
            "-123abcd4567089effedcba9876543210",           // 32 chars with a hyphen
            "{" + lower, "{" + lower + ")", "urn:uuix:" + lower, "urn:uuid:" + lower.replacingOccurrences(of: "-", with: ""),
            "+0123abcd4567089effedcba987654321",
        ]
        for text in bad {
            XCTAssertNil(UUID128(text), text)
        }
    }

    func testFormatting() {
        XCTAssertEqual(expected.string, lower)
        XCTAssertEqual(expected.description, lower)
        XCTAssertEqual(UUID128(hi: 0, lo: 0).string, "00000000-0000-0000-0000-000000000000")
        XCTAssertEqual(UUID128(hi: .max, lo: .max).string, "ffffffff-ffff-ffff-ffff-ffffffffffff")
        XCTAssertEqual(appendedText { $0.appendASCII("\""); expected.append(to: &$0); $0.appendASCII("\"") }, "\"\(lower)\"")
    }

    func testOrderingMatchesStringOrder() {
        var generator = UUIDGenerator(seed: 1)
        let ids = (0 ..< 200).map { _ in generator.next() }
        XCTAssertEqual(ids.sorted().map(\.string), ids.map(\.string).sorted())
        XCTAssertLessThan(UUID128(hi: 1, lo: .max), UUID128(hi: 2, lo: 0))
        XCTAssertEqual(Set(ids).count, 200)
    }

    func testGeneratorSetsVersionAndVariant() {
        var generator = UUIDGenerator()
        for _ in 0 ..< 1000 {
            let id = generator.next()
            let text = Array(id.string)
            XCTAssertEqual(text[14], "4")
            XCTAssertTrue("89ab".contains(text[19]), String(text))
            XCTAssertEqual(id.hi >> 12 & 0xF, 4)
            XCTAssertEqual(id.lo >> 62, 0b10)
            XCTAssertEqual(UUID128(id.string), id)
        }
    }

    func testSeeding() {
        var a = UUIDGenerator(seed: 1)
        var b = UUIDGenerator(seed: 2)
        var a2 = UUIDGenerator(seed: 1)
        let fromA = (0 ..< 10).map { _ in a.next() }
        XCTAssertNotEqual(fromA, (0 ..< 10).map { _ in b.next() })
        XCTAssertEqual(fromA, (0 ..< 10).map { _ in a2.next() })
        var zero = UUIDGenerator(seed: 0)
        XCTAssertNotEqual(zero.next(), zero.next())
        var system1 = UUIDGenerator()
        var system2 = UUIDGenerator()
        XCTAssertNotEqual(system1.next(), system2.next())
    }
}

final class OrderedUUIDTests: XCTestCase {
    func testOrderedIdsAreVersion4AndRiseWithinAndAcrossMilliseconds() {
        var generator = UUIDGenerator(seed: 7)
        var previous = generator.nextOrdered(unixMs: 1_700_000_000_000)
        for step in 0..<10_000 {
            // Many ids in one millisecond, then time moves (and once goes back).
            let ms: Int64 = step < 5_000 ? 1_700_000_000_000 : (step == 7_000 ? 1_600_000_000_000 : 1_700_000_000_001)
            let id = generator.nextOrdered(unixMs: ms)
            XCTAssertLessThan(previous, id, "step \(step)")
            XCTAssertEqual((id.hi >> 12) & 0xF, 4, "version")
            XCTAssertEqual(id.lo >> 62, 0b10, "variant")
            previous = id
        }
        XCTAssertEqual(previous.hi >> 16, 1_700_000_000_002, "sequence overflow borrows the next millisecond")
    }
}
