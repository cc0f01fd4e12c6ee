// Over the socket: ReadEvents (seq, paging with after_seq/next_seq, node filter,
// long poll with wait_ms).

import XCTest
import Foundation
import AgentdClient

final class EventsTests: FeatureTestCase {

    private func seqs(_ result: JSONValue) -> [Int] {
        (result["events"]?.arrayValue ?? []).map { $0["seq"]?.int ?? -1 }
    }

    func testReadEventsPagingFilterAndLongPoll() throws {
        let daemon = try makeDaemon()
        let writer = try openConnection(daemon)
        let reader = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(writer, nodes: [nodeSpec(a), nodeSpec(b)])
        let leaseA = try acquire(writer, taskID)["lease_id"]!.stringValue!

        var eventIDs: [String] = []
        for i in 1...5 {
            let committed = try writer.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(a),
                                                           "lease_id": .string(leaseA), "action_type": "STEP",
                                                           "payload": ["i": .int(Int64(i))]])
            eventIDs.append(try XCTUnwrap(committed["event_id"]?.stringValue))
        }

        // Paging with limit 2.
        var page = try readEvents(reader, taskID, limit: 2)
        XCTAssertEqual(seqs(page), [1, 2])
        XCTAssertEqual(page["next_seq"]?.int, 2)
        let event = try XCTUnwrap(page["events"]?[0])
        assertHasKeys(event, ["id", "task_id", "node_id", "action_type", "payload", "timestamp", "seq"], "event")
        XCTAssertEqual(event["id"]?.stringValue, eventIDs[0])
        XCTAssertEqual(event["task_id"]?.stringValue, taskID)
        XCTAssertEqual(event["node_id"]?.stringValue, a)
        XCTAssertEqual(event["action_type"]?.stringValue, "STEP")
        assertJSON(event["payload"], #"{"i":1}"#)
        XCTAssertTrue(itIsISOMillis(event["timestamp"]?.stringValue), "\(event)")

        page = try readEvents(reader, taskID, afterSeq: 2, limit: 2)
        XCTAssertEqual(seqs(page), [3, 4])
        XCTAssertEqual(page["next_seq"]?.int, 4)
        page = try readEvents(reader, taskID, afterSeq: 4, limit: 2)
        XCTAssertEqual(seqs(page), [5])
        XCTAssertEqual(page["next_seq"]?.int, 5)
        XCTAssertEqual(page["events"]?[0]?["id"]?.stringValue, eventIDs[4])
        page = try readEvents(reader, taskID, afterSeq: 5, limit: 2)
        XCTAssertEqual(seqs(page), [])
        XCTAssertEqual(page["next_seq"]?.int, 5, "next_seq stays at after_seq when nothing is returned")
        page = try readEvents(reader, taskID)
        XCTAssertEqual(seqs(page), [1, 2, 3, 4, 5], "after_seq defaults to 0")
        XCTAssertEqual((page["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }, eventIDs)

        // Long poll: parked until another connection commits.
        let poll = post(reader, "ReadEvents", ["task_id": .string(taskID), "after_seq": 5, "wait_ms": 5_000])
        try confirmParked(poll, probe: probe, "ReadEvents with nothing after seq 5")
        let sixth = try writer.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(b),
                                                    "action_type": "ON_B", "payload": ["b": 1]])
        let polled = try answer(poll, timeout: 5)
        XCTAssertEqual(seqs(polled), [6], "\(polled)")
        XCTAssertEqual(polled["next_seq"]?.int, 6)
        XCTAssertEqual(polled["events"]?[0]?["id"]?.stringValue, sixth["event_id"]?.stringValue)
        XCTAssertEqual(polled["events"]?[0]?["node_id"]?.stringValue, b)
        XCTAssertEqual(polled["events"]?[0]?["action_type"]?.stringValue, "ON_B")

        // Node filter; seq stays the task's.
        page = try readEvents(reader, taskID, nodeID: a)
        XCTAssertEqual(seqs(page), [1, 2, 3, 4, 5])
        page = try readEvents(reader, taskID, nodeID: b)
        XCTAssertEqual(seqs(page), [6])
        XCTAssertEqual(page["next_seq"]?.int, 6)

        // A long poll filtered on b is not woken by an event on a.
        let filteredPoll = post(reader, "ReadEvents", ["task_id": .string(taskID), "node_id": .string(b),
                                                       "after_seq": 6, "wait_ms": 5_000])
        try confirmParked(filteredPoll, probe: probe, "ReadEvents on b")
        _ = try writer.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(a), "lease_id": .string(leaseA),
                                            "payload": ["i": 7]])
        try confirmParked(filteredPoll, probe: probe, "ReadEvents on b after an event on a")
        _ = try writer.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(b), "payload": ["b": 2]])
        let filtered = try answer(filteredPoll, timeout: 5)
        XCTAssertEqual(seqs(filtered), [8], "\(filtered)")
        XCTAssertEqual(filtered["next_seq"]?.int, 8)

        // wait_ms 200 with nothing new: empty, next_seq unchanged, and the answer comes.
        let emptyPoll = post(reader, "ReadEvents", ["task_id": .string(taskID), "after_seq": 8, "wait_ms": 200])
        let empty = try answer(emptyPoll, timeout: 5)
        XCTAssertEqual(seqs(empty), [])
        XCTAssertEqual(empty["next_seq"]?.int, 8)

        // Journal entries of the daemon itself get seqs too (COMPLETE_NODE).
        _ = try writer.call("CompleteNode", ["task_id": .string(taskID), "node_id": .string(a), "lease_id": .string(leaseA),
                                             "result_payload": ["ok": 1]])
        page = try readEvents(reader, taskID, afterSeq: 8)
        XCTAssertEqual(seqs(page), [9])
        XCTAssertEqual(page["events"]?[0]?["action_type"]?.stringValue, "COMPLETE_NODE")

        // Seq is per task: another task starts at 1.
        let other = try registerTask(writer, nodes: [nodeSpec(itUUID())])
        let otherNode = try taskStatus(writer, other)["nodes"]![0]!["id"]!.stringValue!
        _ = try writer.call("CommitEvent", ["task_id": .string(other), "node_id": .string(otherNode), "payload": [:]])
        XCTAssertEqual(seqs(try readEvents(reader, other)), [1])

        expectReason(reader, "ReadEvents", ["task_id": .string(itUUID())], reason: "TASK_NOT_FOUND")
    }

    /// Seqs survive a restart and keep counting.
    func testReadEventsSeqAfterRestart() throws {
        let daemon = try makeDaemon()
        var client = try openConnection(daemon)
        let a = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(a)])
        for i in 1...3 {
            _ = try client.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(a), "payload": ["i": .int(Int64(i))]])
        }
        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)
        _ = try client.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(a), "payload": ["i": 4]])
        let page = try readEvents(client, taskID)
        XCTAssertEqual(seqs(page), [1, 2, 3, 4])
        XCTAssertEqual((page["events"]?.arrayValue ?? []).map { $0["payload"]?["i"]?.int ?? -1 }, [1, 2, 3, 4])
        XCTAssertEqual(page["next_seq"]?.int, 4)
    }
}
