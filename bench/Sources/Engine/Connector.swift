import Glibc
import Reactor

extension Harness {
    /// Opens `count` connections to the server, at most 64 attempts at a time, retrying after a
    /// millisecond when the listener's backlog is full (EAGAIN); over tls:// each is handed over
    /// once its handshake is done, and with a greeting once the greeting's answer passed its check.
    /// Runs the loop until all are open; any other failure ends the bench.
    func connectAll(count: Int) -> [Connection] {
        var opened = [Connection?](repeating: nil, count: count)
        var next = 0
        var inFlight = 0
        var done = 0
        var failure: String?

        func attempt(_ index: Int) {
            connectOnce { [unowned self] result in
                switch result {
                case .success(let connection):
                    self.greet(connection) { problem in
                        if let problem {
                            failure = "\(self.endpoint): \(problem)"
                            self.loop.stop()
                            return
                        }
                        opened[index] = connection
                        inFlight -= 1
                        done += 1
                        if done == count { self.loop.stop() } else { startMore() }
                    }
                case .failure(.system(_, let code)) where code == EAGAIN:
                    let retry = Reactor.Timer(loop: self.loop)
                    retry.start(afterMs: 1) {
                        retry.close()
                        attempt(index)
                    }
                case .failure(let error):
                    failure = "connect \(self.endpoint): \(error)"
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
        if !run(timeoutSeconds: 60) { failure = failure ?? "timed out connecting to \(endpoint)" }
        if let failure { fail(failure) }
        return opened.map { $0! }
    }

    /// One connection attempt to a Unix socket; nil when nobody listens (yet) at the path.
    func tryConnect() -> Connection? {
        guard case .unix(let path) = endpoint else { fail("tryConnect: Unix sockets only") }
        var outcome: Connection?
        var finished = false
        UnixConnector.connect(loop: loop, path: path) { [unowned self] result in
            if case .success(let connection) = result { outcome = connection }
            finished = true
            self.loop.stop()
        }
        if !finished { run(timeoutSeconds: 10) }
        return outcome
    }

    private func connectOnce(_ done: @escaping (Result<Connection, ReactorError>) -> Void) {
        switch endpoint {
        case .unix(let path):
            UnixConnector.connect(loop: loop, path: path, done)
        case .tls(let host, let port, let context):
            TCPConnector.connect(loop: loop, host: host, port: port, tls: context, done)
        }
    }

    /// Sends the greeting on `connection` and runs `done` with nil once its answer passed the
    /// check, or with what went wrong. Without a greeting, runs `done(nil)` at once.
    private func greet(_ connection: Connection, _ done: @escaping (String?) -> Void) {
        guard let greeting else {
            done(nil)
            return
        }
        let greeter = Greeter(connection: connection, harness: self, greeting: greeting, done: done)
        connection.userData = greeter          // the delegate is weak; the connection keeps it until the answer
        connection.output.append(contentsOf: greeting.request)
        greeter.sendNow()
    }
}

/// The delegate of a connection while its greeting is answered; the run's Link replaces it.
private final class Greeter: Link {
    let greeting: Greeting
    private var done: ((String?) -> Void)?

    init(connection: Connection, harness: Harness, greeting: Greeting, done: @escaping (String?) -> Void) {
        self.greeting = greeting
        self.done = done
        super.init(connection: connection, harness: harness)
    }

    override func received(_ line: UnsafeRawBufferPointer) {
        finish(greeting.check(line))
    }

    override func closed() {
        // The request is not quoted: it may carry a secret (a token).
        finish("the server closed the connection before answering the first request")
    }

    private func finish(_ problem: String?) {
        guard let done else { return }
        self.done = nil
        connection.userData = nil
        done(problem)
    }
}
