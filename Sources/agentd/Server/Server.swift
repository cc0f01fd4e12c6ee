import Glibc
import Reactor

/// The glue: socket lines into the RequestHandler, answers into connection buffers, and at the
/// end of each loop turn one COMMIT of everything that changed, then the answers go out.
/// Nothing is sent before the state it acknowledges is on disk.
final class Server: ConnectionDelegate {
    private let loop: EventLoop
    private let clock: SystemClock
    private let coordinator: Coordinator
    private let store: Store
    private let handler: RequestHandler
    private let listener: UnixListener
    private let expiryTimer: Timer
    private var armedDeadlineMs: Int64?
    private var connections: [UInt64: Connection] = [:]
    /// Connections with answers waiting for this turn's commit, by id.
    private var awaitingFlush: [UInt64: Connection] = [:]
    private var shuttingDown = false

    init(loop: EventLoop, clock: SystemClock, coordinator: Coordinator, store: Store,
         handler: RequestHandler, listener: UnixListener) {
        self.loop = loop
        self.clock = clock
        self.coordinator = coordinator
        self.store = store
        self.handler = handler
        self.listener = listener
        self.expiryTimer = Timer(loop: loop)
    }

    /// Starts serving: accepted connections, the end-of-turn commit, the expiry timer, signals.
    func start() {
        loop.onEndOfTurn { [unowned self] in self.endOfTurn() }
        loop.onSignal(SIGINT) { [unowned self] in self.shutDown() }
        loop.onSignal(SIGTERM) { [unowned self] in self.shutDown() }
        // What expired while the daemon was down is already changed in memory: write it now.
        commitOrDie()
        armExpiryTimer()
    }

    // MARK: - Connection events

    /// The listener's accept callback.
    func accept(_ connection: Connection) {
        connection.delegate = self
        connections[connection.id] = connection
    }

    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        clock.refresh()
        handler.handle(line: line, connection: connection.id, into: &connection.output)
        if !connection.output.isEmpty { awaitingFlush[connection.id] = connection }
    }

    func connectionDidReceiveOversizedLine(_ connection: Connection) {
        RequestHandler.appendError(.tooLarge, id: nil, to: &connection.output)
        awaitingFlush[connection.id] = connection
    }

    func connectionDidReachEOF(_ connection: Connection) {
        connection.closeAfterFlush()
    }

    func connectionDidClose(_ connection: Connection) {
        connections[connection.id] = nil
    }

    // MARK: - End of the loop turn

    private func endOfTurn() {
        commitOrDie()
        for connection in awaitingFlush.values where !connection.isClosed {
            connection.flush()
        }
        awaitingFlush.removeAll(keepingCapacity: true)
        armExpiryTimer()
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    /// Crash-only: if the batch cannot be written, no client has been told yes for it. Exit
    /// non-zero without sending a thing; a restart recovers what was committed before.
    private func commitOrDie() {
        do {
            try store.commit(&coordinator.changes, from: coordinator)
        } catch {
            Log.error("commit failed, exiting without answering the batch: \(error)")
            exit(1)
        }
    }

    private func armExpiryTimer() {
        let next = coordinator.nextDeadlineMs
        guard next != armedDeadlineMs else { return }
        armedDeadlineMs = next
        guard let next else {
            expiryTimer.stop()
            return
        }
        clock.refresh()
        let delay = UInt64(max(0, next - clock.wallMs))
        expiryTimer.start(afterMs: delay) { [unowned self] in
            self.armedDeadlineMs = nil
            self.clock.refresh()
            self.coordinator.expireDue()
            // The commit and re-arming happen at the end of this loop turn.
        }
    }

    // MARK: - Shutdown

    /// Stop accepting, answer what is queued, commit, remove the socket, and let the loop end.
    func shutDown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        Log.info("shutting down")
        listener.close(removingSocketFile: true)
        commitOrDie()
        for connection in connections.values {
            connection.flush()
            connection.closeAfterFlush()
        }
        expiryTimer.stop()
        // A peer that never reads must not hold the exit up for ever.
        let deadline = Timer(loop: loop)
        deadline.start(afterMs: 2000) { [unowned self] in self.loop.stop() }
        if connections.isEmpty { loop.stop() }
    }
}
