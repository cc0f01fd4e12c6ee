import Foundation
import Glibc
import XCTest
@testable import Reactor

final class UnixListenerTests: SocketLoopTestCase {
    private func status(_ path: String) -> stat? {
        var result = stat()
        return lstat(path, &result) == 0 ? result : nil
    }

    func testSocketFileIsPrivateWhateverTheUmask() throws {
        let saved = umask(0)                       // the widest possible process umask
        defer { umask(saved) }
        let listener = try UnixListener(loop: loop, path: path) { _ in }
        XCTAssertEqual(umask(0), 0, "umask restored after bind")
        let mode = try XCTUnwrap(status(path)).st_mode
        XCTAssertEqual(mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(mode & 0o777, 0o600)
        listener.close()
    }

    func testRefusesAPathWithALiveServer() throws {
        let first = try UnixListener(loop: loop, path: path) { _ in }
        let before = try XCTUnwrap(status(path))
        XCTAssertThrowsError(try UnixListener(loop: loop, path: path) { _ in }) { error in
            XCTAssertEqual(error as? ReactorError, .liveDaemonAtPath(path))
        }
        let after = try XCTUnwrap(status(path))
        XCTAssertEqual(after.st_ino, before.st_ino, "the live socket was left alone")
        // ...and still works.
        let fd = blockingConnect(path)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        first.close()
    }

    func testReplacesAStaleSocket() throws {
        // Bind a socket, then close it without unlinking: nobody answers at the path any more.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        close(fd)

        // Binding over a file that is still there fails with EADDRINUSE, so success means the stale
        // file was removed. (Inode numbers cannot show it: tmpfs reuses them at once.)
        let server = try EchoServer(loop: loop, path: path)
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("alive?\n")
            connection.flush()
        }
        collector.onLine = { [loop] _, _ in loop!.stop() }
        drive(loop)
        XCTAssertEqual(collector.lines, ["alive?"])
        server.listener.close()
    }

    func testRefusesARegularFile() throws {
        let content = bytes("not a socket\n")
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        writeAll(fd, content)
        close(fd)
        XCTAssertThrowsError(try UnixListener(loop: loop, path: path) { _ in }) { error in
            XCTAssertEqual(error as? ReactorError, .notASocket(path))
        }
        let kept = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(Array(kept), content)
    }

    func testRefusesAPathTooLongForSunPath() {
        let long = "/tmp/" + String(repeating: "s", count: 110)
        XCTAssertThrowsError(try UnixListener(loop: loop, path: long) { _ in }) { error in
            XCTAssertEqual(error as? ReactorError, .pathTooLong(long))
        }
    }

    func testCloseLeavesTheFileUnlessAskedToRemoveIt() throws {
        let first = try UnixListener(loop: loop, path: path) { _ in }
        first.close()
        drive(loop)                                    // let the close complete
        XCTAssertNotNil(status(path), "close() does not unlink")
        let second = try UnixListener(loop: loop, path: path) { _ in }   // stale now: replaced
        second.close(removingSocketFile: true)
        XCTAssertNil(status(path))
        drive(loop)
    }
}
