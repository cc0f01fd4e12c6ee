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
    /// `--sync normal`: syncs the WAL in the background within the interval of each commit.
    private let walSync: WALSyncSchedule?
    private var armedDeadlineMs: Int64?
    private var connections: [UInt64: Connection] = [:]
    /// Connections with answers waiting for this turn's commit, by id.
    private var awaitingFlush: [UInt64: Connection] = [:]
    private var shuttingDown = false
    /// Answers held back behind a parked request, per connection: answers leave in request order.
    private var heldAnswers: [UInt64: HeldAnswers] = [:]
    /// Parked requests by waiter id: where and how to answer them.
    private var parked: [UInt64: (connection: Connection, request: RequestHandler.ParkedRequest)] = [:]
    private var scratch: [UInt8] = []

    init(loop: EventLoop, clock: SystemClock, coordinator: Coordinator, store: Store,
         handler: RequestHandler, listener: UnixListener, walSync: WALSyncSchedule? = nil) {
        self.loop = loop
        self.clock = clock
        self.coordinator = coordinator
        self.store = store
        self.handler = handler
        self.listener = listener
        self.expiryTimer = Timer(loop: loop)
        self.walSync = walSync
    }

    /// Starts serving: accepted connections, the end-of-turn commit, the expiry timer, signals.
    func start() {
        coordinator.onWaiterResolved = { [unowned self] waiter, outcome in self.answerParked(waiter, outcome) }
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
        let id = connection.id
        if heldAnswers[id] == nil {
            // The common case: nothing parked here, the answer goes straight to the output.
            if let request = handler.handle(line: line, connection: id, into: &connection.output) {
                heldAnswers[id] = HeldAnswers(slots: [.parked(request.waiter)])
                parked[request.waiter] = (connection, request)
            }
        } else {
            scratch.removeAll(keepingCapacity: true)
            if let request = handler.handle(line: line, connection: id, into: &scratch) {
                heldAnswers[id]?.slots.append(.parked(request.waiter))
                parked[request.waiter] = (connection, request)
            } else if !scratch.isEmpty {
                heldAnswers[id]?.slots.append(.ready(scratch))
            }
            releaseHeldAnswers(of: connection)
        }
        if !connection.output.isEmpty { awaitingFlush[id] = connection }
    }

    /// A parked request ended: its answer takes its place in the connection's order.
    private func answerParked(_ waiter: Waiter, _ outcome: WaiterOutcome) {
        guard let (connection, request) = parked.removeValue(forKey: waiter.id) else { return }
        var answer: [UInt8] = []
        handler.appendResolution(outcome, of: request, to: &answer)
        guard var held = heldAnswers[connection.id],
              let position = held.slots.firstIndex(where: { $0.isParked(waiter.id) }) else { return }
        held.slots[position] = .ready(answer)
        heldAnswers[connection.id] = held
        releaseHeldAnswers(of: connection)
    }

    /// Moves the answers at the front that are ready into the output, up to the first parked one.
    private func releaseHeldAnswers(of connection: Connection) {
        guard var held = heldAnswers[connection.id] else { return }
        var released = 0
        for slot in held.slots {
            guard case let .ready(bytes) = slot else { break }
            connection.output.append(contentsOf: bytes)
            released += 1
        }
        held.slots.removeFirst(released)
        if held.slots.isEmpty {
            heldAnswers[connection.id] = nil
            if held.closeWhenAnswered { connection.closeAfterFlush() }
        } else {
            heldAnswers[connection.id] = held
        }
        if !connection.output.isEmpty { awaitingFlush[connection.id] = connection }
    }

    func connectionDidReceiveOversizedLine(_ connection: Connection) {
        RequestHandler.appendError(.tooLarge, id: .none, to: &connection.output)
        awaitingFlush[connection.id] = connection
    }

    func connectionDidReachEOF(_ connection: Connection) {
        // A peer that stops sending leaves every queue at once; its parked requests are
        // answered now (null), so a half-closed client still reads every answer.
        if heldAnswers[connection.id] != nil {
            heldAnswers[connection.id]?.closeWhenAnswered = true
            coordinator.endWaiters(ofConnection: connection.id)
        } else {
            connection.closeAfterFlush()
        }
    }

    func connectionDidClose(_ connection: Connection) {
        connections[connection.id] = nil
        awaitingFlush[connection.id] = nil
        if let held = heldAnswers.removeValue(forKey: connection.id) {
            for case let .parked(waiter) in held.slots { parked[waiter] = nil }
        }
        coordinator.connectionClosed(connection.id)
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    // MARK: - End of the loop turn

    private func endOfTurn() {
        commitOrDie()
        if store.wantsCheckpoint {
            store.checkpointStarted()
            let store = self.store
            loop.runInBackground({ store.checkpoint() }, then: { store.checkpointFinished() })
        }
        for connection in awaitingFlush.values where !connection.isClosed {
            connection.flush()
        }
        awaitingFlush.removeAll(keepingCapacity: true)
        armExpiryTimer()
        // The next turn (timers, reads, close callbacks) reads the time afresh, once.
        clock.markStale()
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    /// Crash-only: if the batch cannot be written, no client has been told yes for it. Exit
    /// non-zero without sending a thing; a restart recovers what was committed before.
    private func commitOrDie() {
        let wrote = !coordinator.changes.isEmpty
        do {
            try store.commit(&coordinator.changes, from: coordinator)
            if wrote { walSync?.committed() }
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
        clock.markStale()
        let delay = UInt64(max(0, next - clock.wallMs))
        expiryTimer.start(afterMs: delay) { [unowned self] in
            self.armedDeadlineMs = nil
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
        coordinator.endAllWaiters()
        commitOrDie()
        for connection in connections.values {
            connection.flush()
            connection.closeAfterFlush()
        }
        expiryTimer.stop()
        walSync?.stop()
        // A peer that never reads must not hold the exit up for ever.
        let deadline = Timer(loop: loop)
        deadline.start(afterMs: 2000) { [unowned self] in self.loop.stop() }
        if connections.isEmpty { loop.stop() }
    }
}

/// Answers of one connection that must wait for a parked request before them.
private struct HeldAnswers {
    enum Slot {
        case parked(UInt64)
        case ready([UInt8])

        func isParked(_ waiter: UInt64) -> Bool {
            if case let .parked(id) = self { return id == waiter }
            return false
        }
    }

    var slots: [Slot]
    var closeWhenAnswered = false
}
