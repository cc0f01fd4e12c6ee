import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Both ends of TLS from the Reactor over loopback: a TCPListener with a server context and
/// TCPConnector with a client context, on one loop. The certificate is made here with
/// `openssl req -x509`.
final class TLSConnectorTests: XCTestCase {
    private var directory = ""
    private var loop: EventLoop!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "reactor-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in ["cert", "other"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                 "-nodes", "-keyout", "\(directory)/\(name)-key.pem", "-out", "\(directory)/\(name).pem",
                                 "-days", "2", "-subj", "/CN=localhost",
                                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "openssl req -x509")
        }
        loop = try EventLoop()
    }

    override func tearDown() {
        loop.close()
        loop = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A TLS echo server on 127.0.0.1 (a kernel-chosen port), flushing at the end of each turn.
    private func startEchoServer() throws -> (TCPListener, EchoOverTLS) {
        let context = try TLSContext(certificateChainFile: directory + "/cert.pem", privateKeyFile: directory + "/cert-key.pem")
        let echo = EchoOverTLS()
        let listener = try TCPListener(loop: loop, host: "127.0.0.1", port: 0, tls: context) { connection in
            connection.delegate = echo
            echo.open.append(connection)
        }
        loop.onEndOfTurn {
            for connection in echo.open where !connection.isClosed { connection.flush() }
        }
        return (listener, echo)
    }

    func testEchoRoundTripOverTLS() throws {
        let (listener, echo) = try startEchoServer()
        let client = try TLSContext(clientTrusting: directory + "/cert.pem")
        XCTAssertTrue(client.isClient)
        let collector = LineCollector()
        var version: String?
        for host in ["127.0.0.1", "localhost"] {
            TCPConnector.connect(loop: loop, host: host, port: listener.port, tls: client) { result in
                switch result {
                case .success(let connection):
                    XCTAssertTrue(connection.isTLS)
                    version = connection.tlsProtocolVersion
                    connection.delegate = collector
                    connection.output.append(contentsOf: bytes("hello over \(host)\nsecond line\n"))
                    connection.flush()
                case .failure(let error):
                    XCTFail("connect to \(host): \(error)")
                    self.loop.stop()
                }
            }
            collector.lines.removeAll()
            collector.onLine = { connection, _ in
                if collector.lines.count == 2 {
                    connection.close()
                    self.loop.stop()
                }
            }
            drive(loop)
            XCTAssertEqual(collector.lines, ["hello over \(host)", "second line"])
            XCTAssertEqual(version, "TLSv1.3")
        }
        XCTAssertEqual(echo.lines, ["hello over 127.0.0.1", "second line", "hello over localhost", "second line"])
        listener.close()
    }

    /// A big pipelined burst both ways: records split across reads, back-pressure on the server.
    func testBurstOfLinesOverTLS() throws {
        let (listener, _) = try startEchoServer()
        let client = try TLSContext(clientTrusting: directory + "/cert.pem")
        let collector = LineCollector()
        let count = 20_000
        TCPConnector.connect(loop: loop, host: "127.0.0.1", port: listener.port, tls: client) { result in
            guard case .success(let connection) = result else {
                XCTFail("connect: \(result)")
                self.loop.stop()
                return
            }
            connection.delegate = collector
            for index in 0..<count {
                connection.output.append(contentsOf: bytes("line \(index) " + String(repeating: "x", count: 100) + "\n"))
            }
            connection.flush()
        }
        collector.onLine = { connection, _ in
            if collector.lines.count == count {
                connection.close()
                self.loop.stop()
            }
        }
        drive(loop, timeoutMs: 20_000)
        XCTAssertEqual(collector.lines.count, count)
        XCTAssertEqual(collector.lines.last, "line \(count - 1) " + String(repeating: "x", count: 100))
        listener.close()
    }

    func testUntrustedCertificateAndWrongNameAreRefused() throws {
        let (listener, echo) = try startEchoServer()
        let untrusting = try TLSContext(clientTrusting: directory + "/other.pem")
        let trusting = try TLSContext(clientTrusting: directory + "/cert.pem")
        var failures: [String] = []
        let cases: [(TLSContext, String?)] = [(untrusting, nil), (trusting, "elsewhere.example")]
        for (context, name) in cases {
            TCPConnector.connect(loop: loop, host: "127.0.0.1", port: listener.port, tls: context, serverName: name) { result in
                switch result {
                case .success(let connection):
                    XCTFail("handshake succeeded with \(name ?? "an untrusted certificate")")
                    connection.close()
                case .failure(let error):
                    failures.append("\(error)")
                }
                self.loop.stop()
            }
            drive(loop)
        }
        XCTAssertEqual(failures.count, 2)
        XCTAssertTrue(failures.allSatisfy { $0.contains("not trusted") }, "\(failures)")
        XCTAssertTrue(failures[1].contains("mismatch"), failures[1])
        XCTAssertTrue(echo.lines.isEmpty)
        listener.close()
    }

    func testNobodyListeningIsAConnectError() throws {
        let (listener, _) = try startEchoServer()
        let port = listener.port
        listener.close()
        let client = try TLSContext(clientTrusting: directory + "/cert.pem")
        var outcome: Result<Connection, ReactorError>?
        TCPConnector.connect(loop: loop, host: "127.0.0.1", port: port, tls: client) { result in
            outcome = result
            self.loop.stop()
        }
        drive(loop)
        guard case .failure(.system("connect", ECONNREFUSED)) = outcome else {
            return XCTFail("expected ECONNREFUSED, got \(String(describing: outcome))")
        }
    }
}

/// Echoes every line back on a TLS connection.
private final class EchoOverTLS: ConnectionDelegate {
    var open: [Connection] = []
    var lines: [String] = []

    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        lines.append(String(decoding: line, as: UTF8.self))
        connection.output.append(contentsOf: line)
        connection.output.append(0x0A)
    }

    func connectionDidClose(_ connection: Connection) {
        open.removeAll { $0 === connection }
    }
}
