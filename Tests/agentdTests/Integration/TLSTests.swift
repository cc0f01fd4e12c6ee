import Foundation
import XCTest

/// The TLS tests are Python (Tests/tls): the client side is Python's own ssl module and the
/// openssl command line, a TLS stack nobody here wrote. This runs them against the binary the
/// suite built, so `swift test` covers them too.
final class TLSTests: XCTestCase {
    func testTLSSuiteWithPythonSSL() throws {
        let binary = try ITDaemon.binaryPath()
        let repository = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "unittest", "discover", "-s", repository + "/Tests/tls", "-p", "test_*.py"]
        var environment = ProcessInfo.processInfo.environment
        environment["AGENTD_BINARY"] = binary
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("OK"), text)
    }
}
