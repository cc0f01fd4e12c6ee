import XCTest
@testable import Reactor

final class LineFramerTests: XCTestCase {
    /// Feeds `chunks` and returns the delivered lines and the last outcome.
    private func frame(_ framer: LineFramer, _ chunks: [ArraySlice<UInt8>]) -> ([String], LineFramer.Outcome) {
        var lines: [String] = []
        var outcome = LineFramer.Outcome.needMoreBytes
        for chunk in chunks {
            outcome = Array(chunk).withUnsafeBytes { raw in
                framer.feed(raw) { line in
                    lines.append(String(decoding: line, as: UTF8.self))
                    return true
                }
            }
            if outcome == .oversized { break }
        }
        return (lines, outcome)
    }

    func testEverySplitIntoTwoAndThreeChunks() {
        let message = bytes("alpha\nbe\r\n\nγamma line\nz\nlast-partial")
        let expected = ["alpha", "be\r", "", "γamma line", "z"]
        for first in 0...message.count {
            for second in first...message.count {
                let framer = LineFramer(maxLineBytes: 64)
                let chunks = [message[0..<first], message[first..<second], message[second...]]
                let (lines, outcome) = frame(framer, chunks)
                XCTAssertEqual(lines, expected, "split at \(first), \(second)")
                XCTAssertEqual(outcome, .needMoreBytes)
                XCTAssertEqual(framer.bufferedByteCount, "last-partial".utf8.count)
                var last: [String] = []
                _ = framer.finish { last.append(String(decoding: $0, as: UTF8.self)); return true }
                XCTAssertEqual(last, ["last-partial"])
            }
        }
    }

    func testOneByteAtATime() {
        let message = bytes("one\ntwo\n\nthree\n")
        let framer = LineFramer(maxLineBytes: 16)
        let (lines, _) = frame(framer, message.indices.map { message[$0...$0] })
        XCTAssertEqual(lines, ["one", "two", "", "three"])
        XCTAssertEqual(framer.bufferedByteCount, 0)
    }

    func testLimitCountsTheNewline() {
        let limit = 8
        // 7 bytes + "\n" = 8: accepted, whether split or not.
        for split in 0...8 {
            let framer = LineFramer(maxLineBytes: limit)
            let message = bytes("1234567\n")
            let (lines, outcome) = frame(framer, [message[0..<split], message[split...]])
            XCTAssertEqual(lines, ["1234567"], "split \(split)")
            XCTAssertEqual(outcome, .needMoreBytes)
        }
        // 8 bytes + "\n" = 9: refused, whether split or not.
        for split in 0...9 {
            let framer = LineFramer(maxLineBytes: limit)
            let message = bytes("ok\n12345678\nnext\n")
            let (lines, outcome) = frame(framer, [message[0..<(3 + split)], message[(3 + split)...]])
            XCTAssertEqual(lines, ["ok"], "split \(split)")
            XCTAssertEqual(outcome, .oversized, "split \(split)")
            XCTAssertEqual(framer.bufferedByteCount, 0)
        }
    }

    func testOversizedIsDetectedBeforeTheNewlineArrives() {
        let framer = LineFramer(maxLineBytes: 8)
        XCTAssertEqual(frame(framer, [bytes("1234567")[...]]).1, .needMoreBytes)
        // The 8th byte without "\n" already makes the line too long.
        XCTAssertEqual(frame(framer, [bytes("8")[...]]).1, .oversized)
    }

    func testRealLimitAcceptsExactlyMaxMinusOne() {
        let limit = Connection.defaultMaxLineBytes
        var message = [UInt8](repeating: 0x61, count: limit - 1)
        message.append(0x0A)
        let framer = LineFramer(maxLineBytes: limit)
        var lengths: [Int] = []
        let chunks = stride(from: 0, to: message.count, by: 65536).map {
            message[$0..<min($0 + 65536, message.count)]
        }
        for chunk in chunks {
            _ = Array(chunk).withUnsafeBytes { framer.feed($0) { lengths.append($0.count); return true } }
        }
        XCTAssertEqual(lengths, [limit - 1])

        message.insert(0x61, at: 0)
        let refusing = LineFramer(maxLineBytes: limit)
        var outcome = LineFramer.Outcome.needMoreBytes
        for start in stride(from: 0, to: message.count, by: 65536) where outcome != .oversized {
            outcome = Array(message[start..<min(start + 65536, message.count)]).withUnsafeBytes {
                refusing.feed($0) { _ in XCTFail("oversized line delivered"); return true }
            }
        }
        XCTAssertEqual(outcome, .oversized)
    }

    func testStopStashesTheRestAndDrainResumesInOrder() {
        let framer = LineFramer(maxLineBytes: 64)
        var lines: [String] = []
        let stopAfter: Set<String> = ["b", "d"]
        let record: (UnsafeRawBufferPointer) -> Bool = { line in
            let text = String(decoding: line, as: UTF8.self)
            lines.append(text)
            return !stopAfter.contains(text)
        }
        let first = bytes("a\nb\nc\nd\ne\npart").withUnsafeBytes { framer.feed($0, record) }
        XCTAssertEqual(first, .stopped)
        XCTAssertTrue(framer.hasStashedLines)
        XCTAssertEqual(lines, ["a", "b"])
        XCTAssertEqual(framer.drain(record), .stopped)
        XCTAssertEqual(lines, ["a", "b", "c", "d"])
        XCTAssertEqual(framer.drain(record), .needMoreBytes)
        XCTAssertFalse(framer.hasStashedLines)
        XCTAssertEqual(lines, ["a", "b", "c", "d", "e"])
        _ = bytes("ial\n").withUnsafeBytes { framer.feed($0, record) }
        XCTAssertEqual(lines.last, "partial")
    }
}
