// CLI test support: run the real `agentd` binary's client commands against a test daemon.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTestCase {
    /// The environment a command gets: the daemon's (AGENTD_HOME in its directory) with its
    /// socket in AGENTD_SOCKET_PATH, so commands find it as a user's would.
    func cliEnvironment(_ daemon: ITDaemon, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = daemon.effectiveEnvironment
        environment["AGENTD_SOCKET_PATH"] = daemon.socketPath
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs `agentd ARGS` to completion (bounded), with `stdin` as its standard input.
    func cli(_ daemon: ITDaemon, _ arguments: [String], stdin: String? = nil,
             environment extra: [String: String] = [:], timeout: TimeInterval = 30) throws -> ITCommandResult {
        var stdinPath = "/dev/null"
        if let stdin {
            stdinPath = "\(daemon.directory)/stdin-\(UUID().uuidString.prefix(8))"
            try stdin.write(toFile: stdinPath, atomically: true, encoding: .utf8)
        }
        return try itRun(try ITDaemon.binaryPath(), arguments, environment: cliEnvironment(daemon, extra),
                         directory: daemon.directory, stdinPath: stdinPath, timeout: timeout)
    }

    /// Starts `agentd ARGS` in the background; it is killed at the end of the test.
    func startCLI(_ daemon: ITDaemon, _ arguments: [String], environment extra: [String: String] = [:]) throws -> ITChild {
        let tag = UUID().uuidString.prefix(8)
        let child = try ITChild.spawn(try ITDaemon.binaryPath(), arguments, environment: cliEnvironment(daemon, extra),
                                      stdoutPath: "\(daemon.directory)/bg-\(tag).out",
                                      stderrPath: "\(daemon.directory)/bg-\(tag).err")
        addTeardownBlock { child.killAndReap() }
        return child
    }

    /// Registers `dag` (the people's format) with `agentd submit --json -` and returns the
    /// task id and the node ids by name.
    func submit(_ daemon: ITDaemon, _ dag: String, file: StaticString = #filePath, line: UInt = #line) throws -> (task: String, nodes: [String: String]) {
        let result = try cli(daemon, ["submit", "--json", "-"], stdin: dag)
        XCTAssertEqual(result.exit, .exited(0), result.stderr, file: file, line: line)
        let answer = try ITJSON.parse(result.stdout)
        let task = try XCTUnwrap(answer["task_id"].string, result.stdout, file: file, line: line)
        var nodes: [String: String] = [:]
        for key in answer["nodes"].keys { nodes[key] = answer["nodes"][key].string }
        return (task, nodes)
    }

    /// True while a process with this pid exists and is not a zombie.
    func processIsAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = ITChild.readFile("/proc/\(pid)/stat")
        // "pid (comm) S ...": the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }
}
