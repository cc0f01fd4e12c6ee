import XCTest
import AgentdClient

/// The one reader of `tls://HOST:PORT` that the daemon's --listen, the clients' --connect and
/// the bench share.
final class TLSAddressTests: XCTestCase {
    func testHostsAndPorts() throws {
        XCTAssertEqual(try TLSAddress(parsing: "tls://agentd.example:7443"), TLSAddress(host: "agentd.example", port: 7443))
        XCTAssertEqual(try TLSAddress(parsing: "tls://[::1]:7443"), TLSAddress(host: "::1", port: 7443))
        XCTAssertEqual(try TLSAddress(parsing: "tls://127.0.0.1:0", allowAnyPort: true).port, 0)
        XCTAssertEqual(TLSAddress(host: "::1", port: 7443).description, "tls://[::1]:7443")
        XCTAssertEqual(TLSAddress(host: "h", port: 1).description, "tls://h:1")
    }

    func testWhatIsRefused() {
        for text in ["tcp://h:1", "h:1", "tls://h", "tls://:7443", "tls://h:0", "tls://h:65536", "tls://h:x",
                     "tls://[::1]", "tls://[::1]7443"] {
            XCTAssertThrowsError(try TLSAddress(parsing: text), text)
        }
    }
}
