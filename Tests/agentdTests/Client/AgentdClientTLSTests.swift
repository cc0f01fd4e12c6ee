import AgentdClient
import Foundation
import XCTest

/// AgentdConnection over tls:// against the real daemon: certificate checked, Authenticate sent
/// first, the agent as default owner, a wrong token and an untrusted certificate refused.
final class AgentdClientTLSTests: XCTestCase {
    private var directory = ""
    private var daemon: Process?
    private var port = 0

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "agentd-client-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/home", withIntermediateDirectories: true)
        for name in ["cert", "other"] {
            try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                         "-nodes", "-keyout", "\(directory)/\(name)-key.pem", "-out", "\(directory)/\(name).pem",
                                         "-days", "2", "-subj", "/CN=localhost",
                                         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        }
        FileManager.default.createFile(atPath: directory + "/tokens", contents: Data("carol carol-token-1234567890\n".utf8),
                                       attributes: [.posixPermissions: 0o600])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ITDaemon.binaryPath())
        process.arguments = ["serve", "--socket", directory + "/home/agentd.sock", "--listen", "tls://127.0.0.1:0",
                             "--tls-cert", directory + "/cert.pem", "--tls-key", directory + "/cert-key.pem",
                             "--tokens", directory + "/tokens"]
        process.environment = ["AGENTD_HOME": directory + "/home", "HOME": directory]
        FileManager.default.createFile(atPath: directory + "/log", contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/log"))
        try process.run()
        daemon = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
            if log.contains(" serving "), let range = log.range(of: "tls://127.0.0.1:") {
                port = Int(log[range.upperBound...].prefix(while: { $0.isNumber })) ?? 0
                return
            }
            usleep(20_000)
        }
        XCTFail("agentd did not start")
    }

    override func tearDown() {
        daemon?.terminate()
        daemon?.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testCallsOverTLSAsTheAuthenticatedAgent() throws {
        let connection = try AgentdConnection(endpoint: "tls://127.0.0.1:\(port)", caFile: directory + "/cert.pem",
                                              token: "carol-token-1234567890")
        defer { connection.close() }
        XCTAssertEqual(connection.agentName, "carol")
        XCTAssertEqual(try connection.call("Health")["status"]?.stringValue, "ok")
        let lock = try connection.call("AcquireResourceLock", ["resource_key": "tls:k"])
        XCTAssertEqual(lock["owner"]?.stringValue, "carol")
        // Pipelined from several threads, answers in order.
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            for _ in 0..<50 {
                XCTAssertEqual(try? connection.call("Health")["status"]?.stringValue, "ok", "thread \(index)")
            }
        }
    }

    func testWrongTokenAndUntrustedCertificateAreRefused() throws {
        XCTAssertThrowsError(try AgentdConnection(endpoint: "tls://127.0.0.1:\(port)", caFile: directory + "/cert.pem",
                                                  token: "not-a-token")) { error in
            XCTAssertEqual((error as? AgentdError)?.reason, "UNAUTHENTICATED", "\(error)")
        }
        XCTAssertThrowsError(try AgentdConnection(endpoint: "tls://127.0.0.1:\(port)", caFile: directory + "/other.pem",
                                                  token: "carol-token-1234567890")) { error in
            XCTAssertTrue("\(error)".contains("not trusted"), "\(error)")
        }
        let tokenFile = directory + "/token"
        FileManager.default.createFile(atPath: tokenFile, contents: Data("  carol-token-1234567890\n".utf8))
        XCTAssertEqual(try AgentdConnection.readTokenFile(tokenFile), "carol-token-1234567890")
    }

    /// The command line reaches the same daemon with --connect, --token-file and --ca, or with
    /// AGENTD_CONNECT and its files, and a command that `agentd lock` runs inherits the way there.
    func testCommandsConnectOverTLS() throws {
        let tokenFile = directory + "/carol.token"
        try "  carol-token-1234567890\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let agentd = try ITDaemon.binaryPath()
        let flags = ["--connect", "tls://127.0.0.1:\(port)", "--token-file", tokenFile, "--ca", directory + "/cert.pem"]
        let environment = ["HOME": directory, "PATH": "/usr/bin:/bin"]
        let call = try itRun(agentd, ["call", "AcquireResourceLock", #"{"resource_key":"cli:tls"}"#] + flags,
                             environment: environment, directory: directory)
        XCTAssertEqual(call.exit, .exited(0), call.stderr)
        XCTAssertTrue(call.stdout.contains("\"owner\": \"carol\""), call.stdout)

        let viaEnvironment = environment.merging(["AGENTD_CONNECT": "tls://127.0.0.1:\(port)",
                                                  "AGENTD_TOKEN_FILE": tokenFile,
                                                  "AGENTD_CA_FILE": directory + "/cert.pem"]) { $1 }
        let locks = try itRun(agentd, ["locks", "--json"], environment: viaEnvironment, directory: directory)
        XCTAssertEqual(locks.exit, .exited(0), locks.stderr)
        XCTAssertTrue(locks.stdout.contains("cli:tls"), locks.stdout)

        // The child of `agentd lock` calls the daemon itself, the same way.
        let nested = try itRun(agentd, ["lock", "cli:nested", "--ttl", "30"] + flags + ["--", agentd, "call", "ListResourceLocks"],
                               environment: environment, directory: directory)
        XCTAssertEqual(nested.exit, .exited(0), nested.stderr)
        XCTAssertTrue(nested.stdout.contains("cli:nested"), nested.stdout)

        let refused = try itRun(agentd, ["call", "Health", "--connect", "tls://127.0.0.1:\(port)",
                                         "--ca", directory + "/other.pem", "--token-file", tokenFile],
                                environment: environment, directory: directory)
        XCTAssertEqual(refused.exit, .exited(69), refused.stderr)
    }

    private func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }
}
