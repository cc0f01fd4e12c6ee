// libFuzzer target: random method sequences against the Coordinator (a ManualClock, no
// store), with every invariant of Sources/CoordinatorInvariants checked after each step,
// and a few answers checked against what the state said before the call.
//
// The input is a program: each step takes an opcode byte and a few argument bytes.
// Tasks, nodes, leases, lock keys and connections are picked from small pools by number,
// so that a short input reaches deep states (stale leases, retries, cancelled tasks,
// waiters timing out, connections dropping what they hold).

import AgentdBase
import AgentdCore
import CoordinatorInvariants

/// The input, read a byte at a time; zeros once it runs out.
struct ProgramReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func pick(_ count: Int) -> Int { count <= 1 ? 0 : Int(byte()) % count }

    mutating func flag() -> Bool { byte() & 1 == 1 }

    /// A duration in ms: mostly small, sometimes long, sometimes zero, now and then absurd
    /// (a client may send any non-negative integer).
    mutating func millis() -> Int64 {
        let b = byte()
        if b == 255 { return Int64.max }
        switch b & 3 {
        case 0: return 0
        case 1: return Int64(b >> 2) * 10
        case 2: return Int64(b >> 2) * 1000
        default: return Int64(b >> 2) * 60_000
        }
    }

    /// A TTL in seconds: 0 to 4, now and then absurd.
    mutating func seconds() -> Int64 {
        let b = byte()
        switch b {
        case 255: return Int64.max
        case 254: return Int64.max / 1000 + 1
        default: return Int64(b % 5)
        }
    }
}

/// What the program has seen, so it can name things again (including stale ones).
final class World {
    let clock = ManualClock()
    let coordinator: Coordinator
    var tasks: [UUID128] = []
    var nodes: [(task: UUID128, node: UUID128)] = []
    var leases: [(task: UUID128, node: UUID128, lease: UUID128)] = []
    var locks: [(key: String, lease: UUID128)] = []
    var waiters: [UInt64: Waiter] = [:]
    var invariants = InvariantChecker()
    static let keys = ["file:a", "file:b", "db", "file:a/b"]

    init() {
        coordinator = Coordinator(settings: .init(nodeTimeoutSecs: 30, contextEventLimit: 5),
                                  clock: clock, ids: UUIDGenerator(seed: 7))
        coordinator.onWaiterResolved = { [unowned self] waiter, outcome in self.resolved(waiter, outcome) }
    }

    func resolved(_ waiter: Waiter, _ outcome: WaiterOutcome) {
        guard waiters.removeValue(forKey: waiter.id) != nil else {
            invariantFailure("waiter \(waiter.id) resolved twice or never parked")
        }
        switch outcome {
        case let .acquired(ref):
            guard let task = coordinator.task(slot: ref.task), let lease = task.nodes[Int(ref.index)].lease,
                  task.nodes[Int(ref.index)].status == .running else {
                invariantFailure("a waiter was handed node \(ref) that is not RUNNING")
            }
            leases.append((task.id, task.nodes[Int(ref.index)].id, lease.id))
        case let .lockGranted(slot):
            guard let lock = coordinator.lock(slot: slot) else { invariantFailure("a waiter was granted a lock that is gone") }
            locks.append((lock.key, lock.leaseId))
        case .events, .nothing:
            break
        }
    }

    func someTask(_ r: inout ProgramReader) -> UUID128 {
        if tasks.isEmpty || r.byte() == 255 { return UUID128(hi: 0x1234_5678_9ABC_4DEF, lo: 0x8123_4567_89AB_CDEF) }
        return tasks[r.pick(tasks.count)]
    }

    func someNode(_ r: inout ProgramReader) -> (UUID128, UUID128) {
        if nodes.isEmpty { return (someTask(&r), UUID128(hi: 1, lo: 2)) }
        let (task, node) = nodes[r.pick(nodes.count)]
        // Now and then, the right node under the wrong task.
        return r.byte() == 254 ? (someTask(&r), node) : (task, node)
    }

    func someLease(_ r: inout ProgramReader) -> (UUID128, UUID128, UUID128) {
        if leases.isEmpty { let (t, n) = someNode(&r); return (t, n, UUID128(hi: 3, lo: 4)) }
        // Prefer recent leases (most likely still live), but reach old ones too.
        let count = leases.count
        let index = r.flag() ? count - 1 - r.pick(min(count, 4)) : r.pick(count)
        return leases[index]
    }

    func definitions(_ r: inout ProgramReader, existing: [UUID128]) -> [NodeDefinition] {
        let count = r.pick(6)
        var ids = existing
        var definitions: [NodeDefinition] = []
        for _ in 0..<count {
            var definition = NodeDefinition()
            let id = coordinator.ids.next()
            definition.id = r.byte() == 253 ? (ids.last ?? id) : id   // sometimes a duplicate
            let dependencyCount = ids.isEmpty ? 0 : r.pick(3)
            for _ in 0..<dependencyCount { definition.dependencies.append(ids[r.pick(ids.count)]) }
            if r.byte() == 252 { definition.dependencies.append(id) }            // a self-dependency
            if r.byte() == 251 { definition.dependencies.append(UUID128(hi: 9, lo: 9)) } // unknown
            if r.flag() { definition.maxAttempts = Int32(1 + r.pick(3)) }
            definitions.append(definition)
            ids.append(id)
        }
        // A cycle inside the batch, now and then.
        if definitions.count >= 2, r.byte() == 250, let last = definitions.last?.id {
            definitions[0].dependencies.append(last)
        }
        return definitions
    }

    func nodeIds(of task: UUID128) -> [UUID128] {
        guard let record = coordinator.tasksById[task] else { return [] }
        return record.nodes.map(\.id)
    }

    /// The runnable node an acquire must hand out: the first in registration order.
    func firstRunnable(_ task: UUID128) -> Int32? {
        guard let record = coordinator.tasksById[task], !record.cancelled else { return nil }
        return record.nodes.indices.first {
            record.nodes[$0].status == .pending
                && record.nodes[$0].dependencies.allSatisfy { record.nodes[Int($0)].status == .completed }
        }.map(Int32.init)
    }

    /// What the Store does at the end of a turn, in memory: rows are written, marks cleared.
    func commit() {
        let c = coordinator
        for (slot, range) in c.changes.newNodes {
            guard let task = c.task(slot: slot) else { continue }
            for index in range { task.nodes[Int(index)].persist = .clean }
        }
        for ref in c.changes.dirtyNodes {
            guard let task = c.task(slot: ref.task) else { continue }
            task.nodes[Int(ref.index)].persist = .clean
        }
        c.changes.removeAll()
    }

    func step(_ r: inout ProgramReader) {
        let c = coordinator
        let opcode = r.byte() % 20
        do {
            switch opcode {
            case 0:
                let id = try c.registerTask(goal: "g", context: JSONPayload.emptyObject,
                                            nodes: definitions(&r, existing: []))
                tasks.append(id)
                for node in nodeIds(of: id) { nodes.append((id, node)) }
            case 1:
                let task = someTask(&r)
                let before = nodeIds(of: task).count
                let range = try c.addNodes(task: task, nodes: definitions(&r, existing: nodeIds(of: task)))
                guard Int(range.lowerBound) == before else { invariantFailure("AddNodes range \(range) after \(before) nodes") }
                for node in nodeIds(of: task)[before...] { nodes.append((task, node)) }
            case 2, 3:
                let task = someTask(&r)
                let connection = UInt64(1 + r.pick(3))
                let wait = r.flag() ? r.millis() : 0
                let ttl: Int64? = r.flag() ? r.seconds() : nil
                let bound = r.flag()
                c.expireDue()
                let expected = firstRunnable(task)
                let outcome = try c.acquireNextNode(task: task, owner: "o", leaseTTLSecs: ttl, releaseOnDisconnect: bound,
                                                    connection: connection, waitMs: wait)
                switch outcome {
                case let .node(ref):
                    guard ref.index == expected else { invariantFailure("acquired node \(ref.index), first runnable was \(String(describing: expected))") }
                    let record = c.task(slot: ref.task)!
                    leases.append((task, record.nodes[Int(ref.index)].id, record.nodes[Int(ref.index)].lease!.id))
                case .nothing:
                    guard expected == nil else { invariantFailure("acquire answered nothing with node \(expected!) runnable") }
                case let .parked(waiter):
                    guard expected == nil else { invariantFailure("acquire parked with node \(expected!) runnable") }
                    waiters[waiter] = c.waiters[waiter]
                }
            case 4:
                let (task, node, lease) = someLease(&r)
                try c.heartbeatNode(task: task, node: node, lease: lease, leaseTTLSecs: r.flag() ? r.seconds() : nil)
            case 5:
                let (task, node, lease) = someLease(&r)
                let id = try c.commitEvent(task: task, node: node, lease: r.byte() == 249 ? nil : lease,
                                           actionType: "E", payload: JSONPayload.emptyObject)
                guard c.tasksById[task]?.events.last?.id == id else { invariantFailure("CommitEvent's event is not the last one") }
            case 6, 7:
                let (task, node, lease) = someLease(&r)
                _ = try c.completeNode(task: task, node: node, lease: lease, result: JSONPayload.emptyObject)
                guard let ref = c.nodeRefs[node], c.task(slot: ref.task)?.nodes[Int(ref.index)].status == .completed else {
                    invariantFailure("CompleteNode succeeded but the node is not COMPLETED")
                }
            case 8:
                let (task, node, lease) = someLease(&r)
                _ = try c.failNode(task: task, node: node, lease: lease, error: JSONPayload.emptyObject)
            case 9:
                let (task, node) = someNode(&r)
                try c.retryNode(task: task, node: node)
            case 10:
                try c.cancelTask(task: someTask(&r))
            case 11:
                try c.deleteTask(task: someTask(&r))
            case 12, 13:
                var request = LockRequest(key: World.keys[r.pick(World.keys.count)])
                request.ttlSecs = r.flag() ? r.seconds() : nil
                let connection = UInt64(1 + r.pick(3))
                if r.flag() { request.boundConnection = connection }
                if r.byte() >= 240 { request.taskId = someTask(&r) }
                let wasHeld = c.lock(key: request.key) != nil
                c.expireDue()
                let heldNow = c.lock(key: request.key) != nil
                let counter = c.fencingCounter
                switch try c.acquireLock(request, connection: connection, waitMs: r.flag() ? r.millis() : 0) {
                case let .granted(slot):
                    guard !heldNow, let lock = c.lock(slot: slot), lock.fencingToken == counter + 1 else {
                        invariantFailure("lock granted while held, or its token did not rise by one")
                    }
                    locks.append((lock.key, lock.leaseId))
                case .held:
                    guard heldNow || wasHeld else { invariantFailure("a free key answered held") }
                case let .parked(waiter):
                    waiters[waiter] = c.waiters[waiter]
                }
            case 14:
                guard !locks.isEmpty else { break }
                let (key, lease) = locks[r.pick(locks.count)]
                try c.heartbeatLock(key: key, lease: lease, ttlSecs: r.flag() ? r.seconds() : nil)
            case 15:
                guard !locks.isEmpty else { break }
                let (key, lease) = locks[r.pick(locks.count)]
                try c.releaseLock(key: key, lease: lease)
                if let holder = c.lock(key: key), holder.leaseId == lease { invariantFailure("released lock \(key) still held") }
            case 16:
                clock.advance(ms: min(r.millis(), 1_000_000_000))
                c.expireDue()
                invariants.enforce(c, expiry: .nothingDue)
            case 17:
                let connection = UInt64(1 + r.pick(3))
                if r.flag() { c.endWaiters(ofConnection: connection) } else { c.connectionClosed(connection) }
                // A closed connection's parked requests are never answered: forget them here too.
                for (id, waiter) in waiters where waiter.connection == connection && c.waiters[id] == nil {
                    waiters[id] = nil
                }
            case 18:
                let (task, node) = someNode(&r)
                let afterSeq = Int64(r.pick(8))
                let outcome = try c.readEvents(task: task, node: r.flag() ? node : nil, afterSeq: afterSeq,
                                               limit: 1 + r.pick(4), connection: UInt64(1 + r.pick(3)),
                                               waitMs: r.flag() ? r.millis() : 0)
                if case let .parked(waiter) = outcome { waiters[waiter] = c.waiters[waiter] }
            default:
                let status = r.flag() ? TaskStatus(rawValue: UInt8(r.pick(4))) : nil
                let listed = try c.listTasks(status: status, limit: 1 + r.pick(5), after: r.flag() ? someTask(&r) : nil)
                for task in listed where status != nil && task.status != status {
                    invariantFailure("ListTasks \(status!.name) listed a \(task.status.name) task")
                }
                commit()
            }
        } catch is CoordinatorError {
            // A refusal must leave the state as the invariants want it; checked below.
        } catch {
            invariantFailure("unexpected error \(error)")
        }
        invariants.enforce(c)
        // Waiters the Coordinator holds are exactly the ones the program saw park, minus
        // those whose connection closed (they leave without an answer).
        guard Set(c.waiters.keys) == Set(waiters.keys) else {
            invariantFailure("parked \(c.waiters.keys.sorted()), the program saw \(waiters.keys.sorted()) park")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func coordinatorFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = ProgramReader(bytes: UnsafeBufferPointer(start: data, count: size))
    let world = World()
    var steps = 0
    while !reader.isAtEnd && steps < 400 {
        world.step(&reader)
        steps += 1
    }
    // Shutdown: every parked request is answered, nothing is left waiting.
    world.coordinator.endAllWaiters()
    guard world.coordinator.waiters.isEmpty else { invariantFailure("waiters left after endAllWaiters") }
    world.invariants.enforce(world.coordinator)
    return 0
}
