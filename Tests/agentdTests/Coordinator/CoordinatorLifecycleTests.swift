import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// AddNodes.
final class CoordinatorAddNodesTests: XCTestCase {
    func testDependencyOnACompletedNodeIsRunnableAtOnce() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), n = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, l) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: a, lease: l, result: bytes("1"))
        XCTAssertEqual(try c.task(t).status, .completed)
        let range = try c.addNodes(task: t, nodes: [node(n, [a])])
        XCTAssertEqual(range, 1..<2)
        XCTAssertEqual(try c.nodeRecord(t, n).unfinishedDependencies, 0)
        XCTAssertEqual(try c.task(t).status, .active, "a COMPLETED task with a new node is ACTIVE again")
        XCTAssertEqual(try c.mustAcquire(t).0, n)
        XCTAssertEqual(c.totals.nodes, 2)
        XCTAssertEqual(c.changes.newNodes.last?.range, 1..<2)
    }

    func testDependencyOnAFailedNodeIsBlockedAtOnceAndBlocksTheRestOfTheBatch() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), x = uuid(2), y = uuid(3), z = uuid(4), free = uuid(5)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, l) = try c.mustAcquire(t)
        _ = try c.failNode(task: t, node: a, lease: l, error: bytes("1"))
        // z is listed before y, which it depends on: blocked through a forward reference.
        _ = try c.addNodes(task: t, nodes: [node(x, [a]), node(z, [y]), node(y, [x]), node(free)])
        let record = try c.task(t)
        for id in [x, y, z] { XCTAssertTrue(try c.nodeRecord(t, id).isBlocked, "\(id)") }
        XCTAssertFalse(try c.nodeRecord(t, free).isBlocked)
        XCTAssertEqual(record.blockedCount, 3)
        XCTAssertEqual(record.status, .active, "free can run")
        XCTAssertEqual(try c.mustAcquire(t).0, free)
        XCTAssertEqual(try c.acquireNextNode(task: t, owner: "w", waitMs: 0), .nothing)

        try c.retryNode(task: t, node: a)
        XCTAssertEqual(record.blockedCount, 0)
        XCTAssertEqual(try c.mustAcquire(t).0, a)
    }

    func testBatchForwardReferences() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), x = uuid(2), y = uuid(3)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, la) = try c.mustAcquire(t)
        let range = try c.addNodes(task: t, nodes: [node(x, [y, a]), node(y)])
        XCTAssertEqual(range, 1..<3)
        XCTAssertEqual(try c.task(t).nodes[1].id, x, "in the given order")
        XCTAssertEqual(try c.task(t).nodes[2].id, y)
        XCTAssertEqual(try c.nodeRecord(t, x).unfinishedDependencies, 2)
        let (ny, ly) = try c.mustAcquire(t)
        XCTAssertEqual(ny, y, "x waits for y and a")
        _ = try c.completeNode(task: t, node: y, lease: ly, result: bytes("1"))
        XCTAssertEqual(try c.acquireNextNode(task: t, owner: "w", waitMs: 0), .nothing)
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(try c.mustAcquire(t).0, x)
    }

    func testValidationMessagesMatchRegisterTask() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), b = uuid(2), other = uuid(3), n1 = uuid(4), n2 = uuid(5), n3 = uuid(6)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b)])
        _ = try c.registerTask(goal: "other", context: bytes("{}"), nodes: [node(other)])
        let before = (c.totals.nodes, try c.task(t).nodes.count)
        c.changes.removeAll()

        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1), node(n1)]),
                         "invalid state: duplicate node id: \(n1.string)")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(a)]),
                         "invalid state: duplicate node id: \(a.string)")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1), node(other)]),
                         "invalid state: duplicate node id: \(other.string)")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1, [n1])]),
                         "invalid state: node \(n1.string) cannot depend on itself")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1, [uuid(99)])]),
                         "invalid state: node \(n1.string) depends on unknown node \(uuid(99).string)")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1, [other])]),
                         "invalid state: node \(n1.string) depends on unknown node \(other.string)")
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(n1, [a, n3]), node(n2, [n1]), node(n3, [n2, b])]),
                         reason: .invalidDAG)
        do {
            _ = try c.addNodes(task: t, nodes: [node(n1, [a, n3]), node(n2, [n1]), node(n3, [n2, b])])
        } catch let error as CoordinatorError {
            XCTAssertTrue(error.message.hasPrefix("invalid state: cycle detected at node "), error.message)
        }
        XCTAssertRefused(try c.addNodes(task: uuid(77), nodes: [node(n1)]), reason: .taskNotFound)

        XCTAssertEqual(c.totals.nodes, before.0, "nothing of a refused batch is kept")
        XCTAssertEqual(try c.task(t).nodes.count, before.1)
        XCTAssertNil(c.nodeRefs[n1])
        XCTAssertTrue(c.changes.isEmpty)
        // The same ids are accepted once the batch is valid.
        XCTAssertEqual(try c.addNodes(task: t, nodes: [node(n1, [a]), node(n2, [n1, b])]), 2..<4)
    }

    func testRefusedOnACancelledTask() throws {
        let (c, _) = makeCoordinator()
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        try c.cancelTask(task: t)
        XCTAssertRefused(try c.addNodes(task: t, nodes: [node(uuid(2))]), reason: .taskClosed,
                         "invalid state: task \(t.string) is CANCELLED")
        XCTAssertEqual(try c.task(t).nodes.count, 1)
    }
}

/// Task.status, CancelTask and ListTasks.
final class CoordinatorTaskStatusTests: XCTestCase {
    func testStatusFollowsTheNodes() throws {
        let (c, _) = makeCoordinator()
        let empty = try c.registerTask(goal: "empty", context: bytes("{}"), nodes: [])
        XCTAssertEqual(try c.task(empty).status, .active, "a task with no nodes is ACTIVE")

        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let record = try c.task(t)
        let (_, la) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(record.status, .active)
        let (_, lb) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: b, lease: lb, result: bytes("1"))
        XCTAssertEqual(record.status, .completed)
        XCTAssertEqual(record.indexedStatus, .completed)

        _ = try c.addNodes(task: t, nodes: [node(uuid(3), [b])])
        XCTAssertEqual(record.status, .active)
        XCTAssertEqual(record.indexedStatus, .active)
        let (n3, l3) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: n3, lease: l3, result: bytes("1"))
        XCTAssertEqual(record.status, .completed)

        // Adding nodes to the empty task keeps it ACTIVE; it completes with them.
        _ = try c.addNodes(task: empty, nodes: [node(uuid(4))])
        XCTAssertEqual(try c.task(empty).status, .active)
    }

    func testCancelTaskFailsOpenNodesAndClosesTheTask() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let done = uuid(1), running = uuid(2), pending = uuid(3), blocked = uuid(4)
        let t = try c.registerTask(goal: "g", context: bytes("{}"),
                                   nodes: [node(done), node(running), node(pending, [done, running]),
                                           node(blocked, [pending])])
        let (_, ld) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: done, lease: ld, result: bytes("\"kept\""))
        let (_, lr) = try c.mustAcquire(t)
        let w = try c.mustPark(t, connection: 3)
        XCTAssertEqual(c.deadlines.count, 2, "the lease and the waiter")
        c.changes.removeAll()

        try c.cancelTask(task: t)
        let record = try c.task(t)
        XCTAssertEqual(record.status, .cancelled)
        XCTAssertEqual(record.indexedStatus, .cancelled)
        XCTAssertEqual(try c.status(t, done), .completed)
        XCTAssertEqual(payloadText(try c.nodeRecord(t, done).result), "\"kept\"")
        for id in [running, pending, blocked] {
            XCTAssertEqual(try c.status(t, id), .failed)
            XCTAssertEqual(payloadText(try c.nodeRecord(t, id).result), "{\"error\":\"task cancelled\"}")
            XCTAssertNil(try c.nodeRecord(t, id).lease)
        }
        XCTAssertEqual(record.counts, [0, 0, 1, 3])
        XCTAssertEqual(record.blockedCount, 0)
        XCTAssertTrue(record.ready.isEmpty)
        XCTAssertEqual(c.deadlines.count, 0, "the lease's deadline and the waiter's are gone")
        XCTAssertEqual(log.ids, [w])
        XCTAssertEqual(log.outcome(of: w)?.isNothing, true)
        XCTAssertEqual(c.changes.dirtyTasks, [record.slot])

        XCTAssertRefused(try c.acquireNextNode(task: t, owner: "w", waitMs: 0), reason: .taskClosed,
                         "invalid state: task \(t.string) is CANCELLED")
        XCTAssertRefused(try c.acquireNextNode(task: t, owner: "w", connection: 1, waitMs: 1_000), reason: .taskClosed)
        XCTAssertRefused(try c.retryNode(task: t, node: running), reason: .taskClosed)
        XCTAssertRefused(try c.completeNode(task: t, node: running, lease: lr, result: bytes("1")),
                         "invalid state: node \(running.string) cannot transition from FAILED to COMPLETED")
        XCTAssertTrue(c.waiters.isEmpty)

        // Idempotent.
        c.changes.removeAll()
        try c.cancelTask(task: t)
        XCTAssertTrue(c.changes.isEmpty)
        XCTAssertEqual(record.status, .cancelled)
    }

    func testCancelUnbindsABoundLease() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.acquireNextNode(task: t, owner: "w", releaseOnDisconnect: true, connection: 7)
        try c.cancelTask(task: t)
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .failed)
        XCTAssertEqual(try c.task(t).events.count, 0, "no LEASE_EXPIRED after the cancel")
        XCTAssertEqual(c.counters.timeoutRollbacks, 0)
    }

    func testListTasksPagesNewestFirst() throws {
        let (c, _) = makeCoordinator()
        var ids: [UUID128] = []
        for i in 0..<5 { ids.append(try c.registerTask(goal: "t\(i)", context: bytes("{}"), nodes: [])) }
        XCTAssertEqual(try c.listTasks(status: nil, limit: 2, after: nil).map(\.id), [ids[4], ids[3]])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 2, after: ids[3]).map(\.id), [ids[2], ids[1]])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 2, after: ids[1]).map(\.id), [ids[0]])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 2, after: ids[0]).map(\.id), [])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 100, after: nil).map(\.id), ids.reversed())
        XCTAssertRefused(try c.listTasks(status: nil, limit: 2, after: uuid(99)), reason: .taskNotFound)
    }

    func testStatusFilterFollowsStatusChanges() throws {
        let (c, _) = makeCoordinator()
        var ids: [UUID128] = []
        for i in 0..<4 {
            ids.append(try c.registerTask(goal: "t\(i)", context: bytes("{}"), nodes: [node(uuid(UInt64(i + 1)))]))
        }
        func list(_ status: TaskStatus, after: UUID128? = nil, limit: Int = 10) throws -> [UUID128] {
            try c.listTasks(status: status, limit: limit, after: after).map(\.id)
        }
        XCTAssertEqual(try list(.active), ids.reversed())
        XCTAssertEqual(try list(.completed), [])

        // Task 1's only node completes: it moves from the ACTIVE list to the COMPLETED list.
        let (n1, l1) = try c.mustAcquire(ids[1])
        _ = try c.completeNode(task: ids[1], node: n1, lease: l1, result: bytes("1"))
        XCTAssertEqual(try list(.active), [ids[3], ids[2], ids[0]])
        XCTAssertEqual(try list(.completed), [ids[1]])
        // Task 2 fails, task 3 is cancelled.
        let (n2, l2) = try c.mustAcquire(ids[2])
        _ = try c.failNode(task: ids[2], node: n2, lease: l2, error: bytes("1"))
        try c.cancelTask(task: ids[3])
        XCTAssertEqual(try list(.active), [ids[0]])
        XCTAssertEqual(try list(.failed), [ids[2]])
        XCTAssertEqual(try list(.cancelled), [ids[3]])
        // Paging within a status list, with a cursor from another list.
        XCTAssertEqual(try list(.active, after: ids[1]), [ids[0]])
        XCTAssertEqual(try list(.active, after: ids[0]), [])
        // Retry brings task 2 back.
        try c.retryNode(task: ids[2], node: n2)
        XCTAssertEqual(try list(.active), [ids[2], ids[0]])
        XCTAssertEqual(try list(.failed), [])
        XCTAssertEqual(try list(.active, limit: 1), [ids[2]])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 10, after: nil).count, 4)
    }
}

/// DeleteTask.
final class CoordinatorDeleteTaskTests: XCTestCase {
    func testDeleteIsRefusedWhileActive() throws {
        let (c, _) = makeCoordinator()
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        XCTAssertRefused(try c.deleteTask(task: t), reason: .taskClosed,
                         "invalid state: task \(t.string) is ACTIVE; only a finished or cancelled task can be deleted")
        let empty = try c.registerTask(goal: "empty", context: bytes("{}"), nodes: [])
        XCTAssertRefused(try c.deleteTask(task: empty), reason: .taskClosed)
        XCTAssertRefused(try c.deleteTask(task: uuid(99)), reason: .taskNotFound)
        XCTAssertEqual(c.totals.tasks, 2)
    }

    func testDeleteAfterCancelRemovesEverything() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let keep = try c.registerTask(goal: "keep", context: bytes("{}"), nodes: [node(uuid(10))])
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let (_, la) = try c.mustAcquire(t)
        _ = try c.commitEvent(task: t, node: a, lease: la, actionType: "NOTE", payload: bytes("1"))
        _ = try c.acquireLock(LockRequest(key: "task-lock", ttlSecs: 60, taskId: t, nodeId: a))
        _ = try c.acquireLock(LockRequest(key: "other-lock", ttlSecs: 60, taskId: keep))
        _ = try c.acquireLock(LockRequest(key: "free-lock", ttlSecs: 60))
        let reader = try c.readEvents(task: t, node: nil, afterSeq: 1, limit: 10, connection: 4, waitMs: 60_000)
        guard case let .parked(readerId) = reader else { return XCTFail("nothing after seq 1") }
        XCTAssertEqual(c.totals.tasks, 2)
        XCTAssertEqual(c.totals.nodes, 3)
        XCTAssertEqual(c.totals.events, 1)

        try c.cancelTask(task: t)
        c.changes.removeAll()
        try c.deleteTask(task: t)

        XCTAssertRefused(try c.task(t), reason: .taskNotFound, "task not found: \(t.string)")
        XCTAssertRefused(try c.status(t, a), reason: .taskNotFound)
        XCTAssertEqual(c.changes.deletedTasks, [t])
        XCTAssertEqual(c.totals.tasks, 1)
        XCTAssertEqual(c.totals.nodes, 1)
        XCTAssertEqual(c.totals.events, 0)
        XCTAssertEqual(c.totals.nodeCounts, [1, 0, 0, 0])
        XCTAssertNil(c.lock(key: "task-lock"), "the lock naming the task goes")
        XCTAssertNotNil(c.lock(key: "other-lock"))
        XCTAssertNotNil(c.lock(key: "free-lock"))
        XCTAssertTrue(c.locks.keys(namingTask: t).isEmpty)
        XCTAssertEqual(c.changes.dirtyLocks[LockKey("task-lock")], true)
        XCTAssertEqual(c.locksSortedByKey().map(\.key), ["free-lock", "other-lock"])
        XCTAssertEqual(try c.listTasks(status: nil, limit: 10, after: nil).map(\.id), [keep])
        XCTAssertEqual(try c.listTasks(status: .cancelled, limit: 10, after: nil).count, 0)
        XCTAssertEqual(log.ids, [readerId], "the parked reader is answered")
        XCTAssertEqual(log.outcome(of: readerId)?.isNothing, true)
        XCTAssertEqual(c.deadlines.count, 2, "only the two remaining locks")
        XCTAssertTrue(c.waiters.isEmpty)

        // The node ids are free again, for a new task.
        let again = try c.registerTask(goal: "again", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        XCTAssertEqual(try c.mustAcquire(again).0, a)
        XCTAssertEqual(c.totals.tasks, 2)
    }

    func testDeleteACompletedTask() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, l) = try c.mustAcquire(t)
        _ = try c.completeNode(task: t, node: a, lease: l, result: bytes("1"))
        try c.deleteTask(task: t)
        XCTAssertEqual(c.totals.tasks, 0)
        XCTAssertEqual(c.totals.nodes, 0)
        XCTAssertEqual(c.totals.nodeCounts, [0, 0, 0, 0])
        XCTAssertNil(c.nodeRefs[a])
        XCTAssertRefused(try c.deleteTask(task: t), reason: .taskNotFound)
    }

    /// A lock request parked on a key held by the task's lock, naming the same task, is handed
    /// the key while DeleteTask removes the task's locks: a lock naming the deleted task survives
    /// (and would be written with a task_id that no longer exists).
    func testNoLockNamesADeletedTaskEvenWithAParkedLockRequest() throws {
        let (c, _) = makeCoordinator()
        _ = ParkedAnswers(c)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.acquireLock(LockRequest(key: "k", owner: "holder", ttlSecs: 60, taskId: t))
        _ = try c.mustParkLock(LockRequest(key: "k", owner: "waiter", ttlSecs: 60, taskId: t), connection: 2)
        try c.cancelTask(task: t)
        try c.deleteTask(task: t)
        XCTAssertTrue(c.locks.keys(namingTask: t).isEmpty)
        XCTAssertFalse(c.locksSortedByKey().contains { $0.taskId == t },
                       "lock still names the deleted task: \(c.locksSortedByKey().map { ($0.key, $0.owner) })")
    }
}

/// ReadEvents.
final class CoordinatorReadEventsTests: XCTestCase {
    /// A task with nodes a and b and five events: a, b, a, b, a (seqs 1...5).
    private func journal(_ c: Coordinator) throws -> (UUID128, TaskRecord) {
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1)), node(uuid(2))])
        for i in 0..<5 {
            _ = try c.commitEvent(task: t, node: uuid(UInt64(1 + i % 2)), lease: nil, actionType: "E\(i)",
                                  payload: bytes("\(i)"))
        }
        return (t, try c.task(t))
    }

    func testPagingBySeq() throws {
        let (c, _) = makeCoordinator()
        let (_, record) = try journal(c)
        XCTAssertEqual(record.events.map(\.seq), [1, 2, 3, 4, 5])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 0, limit: 2), [1, 2])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 2, limit: 2), [3, 4])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 4, limit: 2), [5])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 5, limit: 2), [])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 99, limit: 2), [])
        XCTAssertEqual(c.seqs(record, node: nil, afterSeq: 0, limit: 100), [1, 2, 3, 4, 5])
        XCTAssertEqual(record.events.map(\.actionType), ["E0", "E1", "E2", "E3", "E4"])
    }

    func testNodeFilter() throws {
        let (c, _) = makeCoordinator()
        let (_, record) = try journal(c)
        XCTAssertEqual(c.seqs(record, node: 0, afterSeq: 0, limit: 10), [1, 3, 5])
        XCTAssertEqual(c.seqs(record, node: 1, afterSeq: 0, limit: 10), [2, 4])
        XCTAssertEqual(c.seqs(record, node: 0, afterSeq: 0, limit: 2), [1, 3])
        XCTAssertEqual(c.seqs(record, node: 0, afterSeq: 3, limit: 2), [5])
        XCTAssertEqual(c.seqs(record, node: 0, afterSeq: 2, limit: 2), [3, 5], "after a seq of another node")
        XCTAssertEqual(c.seqs(record, node: 1, afterSeq: 4, limit: 2), [])
    }

    func testReadWithoutWaitOrWithEventsAnswersAtOnce() throws {
        let (c, _) = makeCoordinator()
        let (t, record) = try journal(c)
        XCTAssertEqual(try c.readEvents(task: t, node: nil, afterSeq: 0, limit: 10), .ready(task: record.slot, node: nil))
        XCTAssertEqual(try c.readEvents(task: t, node: uuid(2), afterSeq: 0, limit: 10),
                       .ready(task: record.slot, node: 1))
        XCTAssertEqual(try c.readEvents(task: t, node: nil, afterSeq: 4, limit: 10, connection: 1, waitMs: 1_000),
                       .ready(task: record.slot, node: nil), "seq 5 is there")
        XCTAssertEqual(try c.readEvents(task: t, node: nil, afterSeq: 5, limit: 10, connection: 1, waitMs: 0),
                       .ready(task: record.slot, node: nil), "no wait: an empty page at once")
        XCTAssertTrue(c.waiters.isEmpty)
        XCTAssertRefused(try c.readEvents(task: t, node: uuid(9), afterSeq: 0, limit: 10), reason: .nodeNotFound)
        XCTAssertRefused(try c.readEvents(task: uuid(9), node: nil, afterSeq: 0, limit: 10), reason: .taskNotFound)
    }

    func testParkedReaderIsResolvedByANewEventOfItsNodeOnly() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let (t, record) = try journal(c)
        let other = try c.registerTask(goal: "other", context: bytes("{}"), nodes: [node(uuid(3))])
        // Node a (index 0) has events up to seq 5; node b (index 1) up to seq 4.
        guard case let .parked(onA) = try c.readEvents(task: t, node: uuid(1), afterSeq: 5, limit: 10,
                                                       connection: 1, waitMs: 60_000) else {
            return XCTFail("nothing after 5 for a")
        }
        guard case let .parked(onB) = try c.readEvents(task: t, node: uuid(2), afterSeq: 4, limit: 10,
                                                       connection: 1, waitMs: 60_000) else {
            return XCTFail("nothing after 4 for b")
        }
        guard case let .parked(onAll) = try c.readEvents(task: t, node: nil, afterSeq: 5, limit: 10,
                                                         connection: 2, waitMs: 60_000) else {
            return XCTFail("nothing after 5")
        }
        _ = try c.commitEvent(task: other, node: uuid(3), lease: nil, actionType: "X", payload: bytes("0"))
        XCTAssertTrue(log.entries.isEmpty, "an event of another task wakes nobody")

        _ = try c.commitEvent(task: t, node: uuid(2), lease: nil, actionType: "B", payload: bytes("0"))
        XCTAssertEqual(Set(log.ids), [onB, onAll], "an event of b wakes the b reader and the unfiltered one")
        XCTAssertNotNil(c.waiters[onA])
        let answer = try XCTUnwrap(log.outcome(of: onB)?.eventsRequest)
        XCTAssertEqual(answer.task, record.slot)
        XCTAssertEqual(answer.node, 1)
        XCTAssertEqual(answer.afterSeq, 4)
        XCTAssertEqual(answer.limit, 10)
        XCTAssertEqual(c.seqs(record, node: answer.node, afterSeq: answer.afterSeq, limit: answer.limit), [6])

        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("0"))
        let forA = try XCTUnwrap(log.outcome(of: onA)?.eventsRequest)
        XCTAssertEqual(c.seqs(record, node: forA.node, afterSeq: forA.afterSeq, limit: forA.limit), [7])
        XCTAssertTrue(c.waiters.isEmpty)
        XCTAssertEqual(c.deadlines.count, 0)
    }

    func testParkedReaderWakesOnLifecycleEvents() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let log = ParkedAnswers(c)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        _ = try c.mustAcquire(t)
        guard case let .parked(id) = try c.readEvents(task: t, node: nil, afterSeq: 0, limit: 10,
                                                      connection: 1, waitMs: 60_000) else {
            return XCTFail("empty journal")
        }
        clock.advance(ms: 10_000)
        c.expireDue()
        XCTAssertEqual(log.ids, [id], "LEASE_EXPIRED is an event")
        let page = try XCTUnwrap(log.outcome(of: id)?.eventsRequest)
        let record = try c.task(t)
        XCTAssertEqual(c.events(of: record, node: page.node, afterSeq: page.afterSeq, limit: page.limit)
            .map { record.events[Int($0)].actionType }, ["LEASE_EXPIRED"])
    }

    func testTimedOutReaderGetsAnEmptyPage() throws {
        let (c, clock) = makeCoordinator()
        let log = ParkedAnswers(c)
        let (t, record) = try journal(c)
        guard case let .parked(id) = try c.readEvents(task: t, node: uuid(2), afterSeq: 4, limit: 10,
                                                      connection: 1, waitMs: 2_000) else {
            return XCTFail("nothing after 4 for b")
        }
        // An event of the other node does not end the wait.
        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("0"))
        clock.advance(ms: 1_999)
        c.expireDue()
        XCTAssertTrue(log.entries.isEmpty)
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(log.ids, [id])
        let page = try XCTUnwrap(log.outcome(of: id)?.eventsRequest, "a timed-out reader is answered with .events")
        XCTAssertEqual(page.node, 1)
        XCTAssertEqual(c.seqs(record, node: page.node, afterSeq: page.afterSeq, limit: page.limit), [],
                       "and its page is empty")
        XCTAssertTrue(c.waiters.isEmpty)
    }

    /// PART_B_SPEC: with wait_ms "the request parks until a matching event arrives": an event at
    /// or before after_seq is not one. Coordinator.wakeEventWaiters compares only the node, so a
    /// reader parked with after_seq ahead of the journal is answered early with an empty page.
    func testParkedReaderIsNotWokenByAnEventAtOrBeforeItsAfterSeq() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let (t, _) = try journal(c)
        guard case let .parked(id) = try c.readEvents(task: t, node: nil, afterSeq: 7, limit: 10,
                                                      connection: 1, waitMs: 60_000) else {
            return XCTFail("nothing after 7")
        }
        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("6"))
        XCTAssertEqual(log.count(of: id), 0, "seq 6 is not after 7")
        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("7"))
        XCTAssertEqual(log.count(of: id), 0, "seq 7 is not after 7")
        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("8"))
        XCTAssertEqual(log.count(of: id), 1, "seq 8 is")
    }

    func testReaderWhoseConnectionClosesIsNotResolved() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let (t, _) = try journal(c)
        _ = try c.readEvents(task: t, node: nil, afterSeq: 5, limit: 10, connection: 3, waitMs: 60_000)
        c.connectionClosed(3)
        _ = try c.commitEvent(task: t, node: uuid(1), lease: nil, actionType: "A", payload: bytes("0"))
        XCTAssertTrue(log.entries.isEmpty)
        XCTAssertEqual(c.deadlines.count, 0)
    }
}
