import AgentdClient
import AgentdStore
import ArgumentParser
import Glibc

/// `agentd backup PATH [--force] [--db PATH]`: a consistent copy of the database while the
/// daemon serves it, found as the daemon finds it (`--db`, `AGENTD_DATABASE_URL`, `AGENTD_HOME`).
/// Restore by starting a daemon on the copy (`agentd serve --db PATH`).
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the database, consistently, while the daemon serves it.",
        discussion: """
        The database is found as the daemon finds it (--db, else AGENTD_DATABASE_URL, else \
        $AGENTD_HOME/agent_state.db). The copy is written beside PATH and renamed over it once \
        complete. Restore by starting a daemon on the copy: agentd serve --db PATH.
        """
    )

    @Argument(help: ArgumentHelp("Where to write the copy.", valueName: "path"), completion: .file())
    var path: String

    @Flag(name: [.short, .long], help: "Replace PATH if it exists.")
    var force = false

    @Option(help: ArgumentHelp("The database to copy.", valueName: "path"), completion: .file())
    var db: String?

    func run() throws {
        var arguments = [path]
        if force { arguments.append("--force") }
        if let db { arguments += ["--db", db] }
        let status = BackupCommand.run(arguments, environment: AgentdEnvironment.processEnvironment())
        if status != 0 { throw ExitCode(status) }
    }

    static func run(_ arguments: [String], environment: [String: String]) -> Int32 {
        var destination: String?
        var force = false
        var flags: [String] = []
        var databaseFlag: String?
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--force", "-f":
                force = true
            case "--db":
                guard let value = rest.popFirst() else { return usageError("--db needs a value") }
                databaseFlag = value
            case "--socket":
                flags.append(argument)
                if let value = rest.popFirst() { flags.append(value) }
            default:
                if argument.hasPrefix("-") || destination != nil { return usageError("unexpected \(argument)") }
                destination = argument
            }
        }
        guard let destination else { return usageError("PATH is missing") }
        let config: Configuration
        do {
            config = try Configuration.load(arguments: flags, environment: environment, allowServeFlags: false)
        } catch {
            fputs("agentd: \(error)\n", stderr)
            return ExitStatus.usage
        }
        let userHome = environment["HOME"] ?? "/tmp"
        let source = databaseFlag.map { Configuration.expandTilde($0, userHome: userHome) } ?? config.databasePath

        if exists(destination) {
            guard force else {
                fputs("agentd: \(destination) exists; pass --force to replace it\n", stderr)
                return 1
            }
        }
        // The copy is made beside the destination and renamed over it once checked, so PATH is
        // never a half-written database.
        // The copy holds everything the daemon holds: only its owner may read it.
        umask(0o077)
        let partial = destination + ".partial"
        for leftover in [partial, partial + "-journal"] { unlink(leftover) }
        var started = timespec()
        clock_gettime(CLOCK_MONOTONIC, &started)
        do {
            let outcome = try Backup.copy(from: source, to: partial)
            if force {
                for stale in ["-wal", "-shm", "-journal"] { unlink(destination + stale) }
            }
            guard rename(partial, destination) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(partial)
                fputs("agentd: cannot move the copy to \(destination): \(reason)\n", stderr)
                return 1
            }
            var ended = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ended)
            let seconds = Double(ended.tv_sec - started.tv_sec) + Double(ended.tv_nsec - started.tv_nsec) / 1e9
            let mib = Double(outcome.pages * outcome.pageSize) / 1_048_576
            print("backed up \(source) to \(destination): \(outcome.pages) pages (\(String(format1: mib)) MiB) in \(String(format1: seconds)) s, \(outcome.steps) steps, longest step \(outcome.longestStepMicros) us")
            return 0
        } catch {
            unlink(partial)
            fputs("agentd: backup failed: \(error)\n", stderr)
            return 1
        }
    }

    private static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    private static func usageError(_ message: String) -> Int32 {
        fputs("agentd: \(message)\nusage: agentd backup PATH [--force] [--db PATH]\n", stderr)
        return ExitStatus.usage
    }
}

private extension String {
    /// One decimal place, without Foundation.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
