import Glibc

/// `locks --big-reader N` (agentd): beside the lock traffic, one more client reads the status of
/// a task of N nodes again and again (TaskStatus, an answer of about 300 bytes a node), on its own
/// thread and blocking socket, throwing the bytes away. The lock traffic's max latency then shows
/// whether one big answer stalls everyone else.
final class BigReader {
    private let socketPath: String
    private let request: [UInt8]
    private var thread: pthread_t?
    private var stopping = false
    private(set) var answers = 0
    private(set) var bytesRead = 0

    /// Builds a task of `nodes` nodes (no dependencies) through `client` and gets ready to read it.
    init(socketPath: String, nodes: Int, client: SyncClient) {
        self.socketPath = socketPath
        let answer = client.call(json: #"{"id":1,"method":"RegisterTask","params":{"goal":"bench big reader"}}"#)
        guard let task = answer.stringValue(after: #""task_id":""#) else { fail("RegisterTask: \(answer.text)") }
        var left = nodes
        while left > 0 {
            let batch = min(left, 20_000)
            var line = bytes(#"{"id":1,"method":"AddNodes","params":{"task_id":"\#(task)","nodes":["#)
            for i in 0..<batch { line.append(contentsOf: i == 0 ? bytes("{}") : bytes(",{}")) }
            line.append(contentsOf: bytes("]}}\n"))
            let added = client.call(line)[0]
            if added.isErrorAnswer { fail("AddNodes: \(added.text.prefix(300))") }
            left -= batch
        }
        request = bytes(#"{"id":1,"method":"TaskStatus","params":{"task_id":"\#(task)"}}"#) + [10]
    }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let reader = Unmanaged<BigReader>.fromOpaque(raw!).takeRetainedValue()
            reader.loop()
            return nil
        }, box)
        self.thread = thread
    }

    func stop() {
        stopping = true
        if let thread { pthread_join(thread, nil) }
    }

    private func loop() {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { fail("big reader: connect \(socketPath) failed") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while !stopping {
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var done = false
            while !done {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { fail("big reader: the daemon closed the connection") }
                bytesRead += n
                done = buffer[n - 1] == 10
            }
            answers += 1
        }
        close(fd)
    }
}
