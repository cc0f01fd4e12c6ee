// Power loss: the daemon on the power-loss simulator (AGENTD_TEST_POWER_LOSS=1, a SQLite VFS
// that keeps every write since a file's last sync in memory), where a kill -9 loses what a
// power cut would. First the simulator and each promise on its own, then a short run of the
// crash harness in each mode (`bench/crash.py --power-loss`; the long runs are in
// docs/RELIABILITY.md). The harness part needs python3; AGENTD_SKIP_POWER_LOSS=1 skips it.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class PowerLossTests: IntegrationTestCase {
    private let powerLoss = ["AGENTD_TEST_POWER_LOSS": "1"]

    private func taskGoals(_ client: ITLineClient) throws -> Set<String> {
        let tasks = try client.call("ListTasks", ["limit": 1000])["tasks"].array ?? []
        return Set(tasks.compactMap { $0["goal"].string })
    }

    /// With a sync interval far away, a change acknowledged a moment before the cut is gone: the
    /// simulator does lose what was not synced (else the harness would prove nothing).
    func testSimulatorLosesWhatWasNotSynced() throws {
        let daemon = try makeDaemon(["--sync", "normal", "--sync-interval", "60000"], environment: powerLoss)
        var client = try connect(daemon)
        _ = try registerTask(client, goal: "not synced", nodes: [nodeDef(itUUID())])
        usleep(200_000)
        client.close()
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        XCTAssertEqual(try taskGoals(client), [], "a commit never synced survived the cut")
    }

    /// --sync normal: once the interval has passed, an acknowledged change survives the cut.
    func testNormalModeKeepsWhatIsOlderThanTheInterval() throws {
        let daemon = try makeDaemon(["--sync", "normal", "--sync-interval", "50"], environment: powerLoss)
        var client = try connect(daemon)
        _ = try registerTask(client, goal: "older than the interval", nodes: [nodeDef(itUUID())])
        usleep(400_000)
        client.close()
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        XCTAssertEqual(try taskGoals(client), ["older than the interval"], daemon.stderrText)
    }

    /// --sync full: acknowledged means synced, whenever the cut comes.
    func testFullModeKeepsEverythingAcknowledged() throws {
        let daemon = try makeDaemon(["--sync", "full"], environment: powerLoss)
        var client = try connect(daemon)
        _ = try registerTask(client, goal: "synced before the answer", nodes: [nodeDef(itUUID())])
        client.close()
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        XCTAssertEqual(try taskGoals(client), ["synced before the answer"], daemon.stderrText)
    }

    /// A fencing token comes from a reservation synced before the token is handed out, whatever
    /// --sync says: a cut that takes the grant itself does not take the token back.
    func testFencingTokensNeverRepeatAcrossACut() throws {
        let daemon = try makeDaemon(["--sync", "normal", "--sync-interval", "60000"], environment: powerLoss)
        var highest: Int64 = 0
        for round in 1...3 {
            let client = try connect(daemon)
            for key in 0..<3 {
                let lock = try client.call("AcquireResourceLock", ["resource_key": "r\(round):k\(key)", "ttl_secs": 60])
                let token = Int64(lock["fencing_token"].int ?? 0)
                XCTAssertGreaterThan(token, highest, "round \(round): token \(token) after \(highest)")
                highest = max(highest, token)
            }
            client.close()
            daemon.crash()
            try daemon.start()
            // Only the first grant of each start (it moves the reservation) was synced: the cut
            // took the later ones, and their tokens are still never handed out again.
            let check = try connect(daemon)
            XCTAssertEqual(try check.call("ListResourceLocks")["locks"].array?.count, round)
            check.close()
        }
    }

    /// The settings are checked, and the error names the one that is wrong.
    func testSyncIntervalIsValidated() throws {
        for (arguments, environment, name) in [
            (["--sync-interval", "0"], [String: String](), "--sync-interval"),
            (["--sync-interval", "soon"], [:], "--sync-interval"),
            ([], ["AGENTD_SYNC_INTERVAL_MS": "60001"], "AGENTD_SYNC_INTERVAL_MS"),
        ] {
            let daemon = try makeDaemon(arguments, environment: environment, start: false)
            try daemon.start(waitReady: false)
            XCTAssertEqual(try daemon.waitForExit(), .exited(64))
            XCTAssertTrue(daemon.currentStderr.contains(name), "\(arguments) \(environment): \(daemon.currentStderr)")
        }
    }

    // MARK: - The crash harness, short

    func testCrashHarnessFullMode() throws { try harness(sync: "full") }

    func testCrashHarnessNormalMode() throws { try harness(sync: "normal") }

    /// Four rounds: random cuts under load with checkpoints at low WAL sizes, one under a light
    /// load (only the interval sync bounds the loss), one in the middle of a checkpoint.
    private func harness(sync: String) throws {
        if let skip = ProcessInfo.processInfo.environment["AGENTD_SKIP_POWER_LOSS"], !skip.isEmpty, skip != "0" {
            throw XCTSkip("AGENTD_SKIP_POWER_LOSS is set")
        }
        guard let python = itWhich("python3") else { throw XCTSkip("python3 is needed for bench/crash.py") }
        // Tests/agentdTests/Integration/PowerLossTests.swift -> the repository.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let directory = try makeTempDir()
        let arguments = [root + "/bench/crash.py", "--power-loss", "--sync", sync, "--rounds", "4", "--workers", "4",
                         "--max-run", "0.6", "--checkpoint-every", "4", "--seed", "9", "--agentd", try ITDaemon.binaryPath()]
        let result = try itRun(python, arguments, environment: ProcessInfo.processInfo.environment,
                               directory: directory, timeout: 120)
        let output = result.stdout + result.stderr
        XCTAssertEqual(result.exit, .exited(0), "crash.py --power-loss --sync \(sync):\n\(output.suffix(4000))")
        XCTAssertTrue(result.stdout.contains("rounds 4, acknowledged "), output)
        XCTAssertTrue(result.stdout.contains(", lost 0\n"), output)
        XCTAssertTrue(result.stdout.contains("1 of 1 cuts in the middle of a checkpoint"), output)
    }
}
