import Glibc

/// agentd: `agentd [serve] [flags]` runs the daemon; every other command is a client of it
/// (Sources/agentd/CLI, one file a command).

// A child that `agentd lock` or `agentd work` starts passes through this binary first, to
// arm the parent-death signal before it becomes the command (see ExecWrapper). It must run
// before anything else: no threads, no parsing.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == ExecWrapper.marker {
    ExecWrapper.run(Array(CommandLine.arguments.dropFirst(2)))
}

AgentdCommand.runFromCommandLine()
