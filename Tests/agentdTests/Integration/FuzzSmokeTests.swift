// A few seconds of each libFuzzer target (fuzz/run TARGET smoke 3): from the seed corpus,
// with a fixed seed. The long runs are `fuzz/run TARGET SECONDS` (docs/RELIABILITY.md).
// The first run builds the library modules and the targets with swiftc -sanitize=fuzzer,address;
// later runs reuse them until a source changes. AGENTD_SKIP_FUZZ=1 skips.

import XCTest
import Foundation

final class FuzzSmokeTests: XCTestCase {
    func testDecoderTargetRunsClean() throws { try smoke("decoder") }

    func testCoordinatorTargetRunsClean() throws { try smoke("coordinator") }

    private func smoke(_ target: String) throws {
        #if !os(Linux)
        throw XCTSkip("libFuzzer ships with the Linux Swift toolchain")
        #else
        if let skip = ProcessInfo.processInfo.environment["AGENTD_SKIP_FUZZ"], !skip.isEmpty, skip != "0" {
            throw XCTSkip("AGENTD_SKIP_FUZZ is set")
        }
        // Tests/agentdTests/Integration/FuzzSmokeTests.swift -> the repository.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let script = root + "/fuzz/run"
        guard FileManager.default.isExecutableFile(atPath: script) else { throw XCTSkip("\(script) not found") }
        let directory = try itMakeTempDir("fuzz")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try itRun(script, [target, "smoke", "3"], environment: ProcessInfo.processInfo.environment,
                               directory: directory, timeout: 600)
        let tail = { (text: String) in text.split(separator: "\n").suffix(40).joined(separator: "\n") }
        XCTAssertEqual(result.exit, .exited(0), "fuzz/run \(target) smoke 3 found a problem:\n\(tail(result.stderr))")
        XCTAssertTrue(result.stderr.contains("Done "), "the fuzzer did not run to the end:\n\(tail(result.stderr))")
        #endif
    }
}
