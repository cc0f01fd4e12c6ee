import Glibc
import Reactor

extension Harness {
    /// Opens `count` connections to the server, at most 64 attempts at a time, retrying after a
    /// millisecond when the listener's backlog is full (EAGAIN). Runs the loop until all are open;
    /// any other failure ends the bench.
    func connectAll(count: Int) -> [Connection] {
        var opened = [Connection?](repeating: nil, count: count)
        var next = 0
        var inFlight = 0
        var done = 0
        var failure: String?

        func attempt(_ index: Int) {
            UnixConnector.connect(loop: loop, path: socketPath) { [unowned self] result in
                switch result {
                case .success(let connection):
                    opened[index] = connection
                    inFlight -= 1
                    done += 1
                    if done == count { self.loop.stop() } else { startMore() }
                case .failure(.system(_, let code)) where code == EAGAIN:
                    let retry = Reactor.Timer(loop: self.loop)
                    retry.start(afterMs: 1) {
                        retry.close()
                        attempt(index)
                    }
                case .failure(let error):
                    failure = "connect \(self.socketPath): \(error)"
                    self.loop.stop()
                }
            }
        }
        func startMore() {
            while inFlight < 64 && next < count {
                inFlight += 1
                next += 1
                attempt(next - 1)
            }
        }

        if count == 0 { return [] }
        startMore()
        if !run(timeoutSeconds: 60) { failure = failure ?? "timed out connecting to \(socketPath)" }
        if let failure { fail(failure) }
        return opened.map { $0! }
    }

    /// One connection attempt; nil when nobody listens (yet) at the socket path.
    func tryConnect() -> Connection? {
        var outcome: Connection?
        var finished = false
        UnixConnector.connect(loop: loop, path: socketPath) { [unowned self] result in
            if case .success(let connection) = result { outcome = connection }
            finished = true
            self.loop.stop()
        }
        if !finished { run(timeoutSeconds: 10) }
        return outcome
    }
}
