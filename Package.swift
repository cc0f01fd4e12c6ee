// swift-tools-version:6.0
import PackageDescription

/// The daemon is single-threaded and its tests run in debug, where exclusivity is still checked;
/// in release the dynamic checks on every class property access cost about 6% of the hot path.
/// Only the daemon's own targets carry the flag: SwiftPM refuses a dependency whose targets
/// have unsafe flags, so the library products (Reactor, AgentdClient) and what they build on
/// stay without it.
let daemonSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "agentd",
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "AgentdClient", targets: ["AgentdClient"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    dependencies: [
        // Latency percentiles in the bench only; the daemon depends on nothing but libuv and SQLite.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // The command line's parsing, help and completions (the CLI only; the daemon's flags
        // are still read by its own Configuration).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The MCP server (`agentd mcp`) only: the official Swift SDK of the Model Context Protocol.
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1"),
    ],
    targets: [
        .systemLibrary(name: "CUV", path: "Sources/CUV", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // TLS for the network listener and its clients (OpenSSL 3 from Debian).
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", providers: [.apt(["libssl-dev"])]),

        // libuv in Swift: loop, listeners, line-framed connections (TLS optional), timers, signals. No agents.
        .target(name: "Reactor", dependencies: ["CUV", "COpenSSL"]),
        // Bytes: the JSON scanner and writers, UUIDs, ISO times. Imports nothing of agentd.
        .target(name: "AgentdBase"),
        // The Coordinator: the pure state machine (tasks, leases, locks, journal, waiters). No I/O.
        .target(name: "AgentdCore", dependencies: ["AgentdBase"], swiftSettings: daemonSettings),
        // The Store: the only code that speaks SQL.
        .target(name: "AgentdStore", dependencies: ["AgentdCore", "AgentdBase", "CSQLite", "CPowerLoss"],
                swiftSettings: daemonSettings),
        // The protocol: request decoding, the method table, result encoding, DescribeInterface.
        .target(name: "AgentdProtocol", dependencies: ["AgentdCore", "AgentdBase"],
                swiftSettings: daemonSettings),
        // The Linux calls Swift's Glibc module lacks (prctl is variadic; memfd_create and pipe2
        // sit behind _GNU_SOURCE), for the commands `agentd lock` and `agentd work` run.
        .target(name: "CProcess"),
        // Test-only: a SQLite VFS that keeps unsynced writes in memory, so a kill is a power cut.
        .target(name: "CPowerLoss", path: "Sources/CPowerLoss", linkerSettings: [.linkedLibrary("sqlite3")]),
        // The one client of the socket: the CLI, the tests and the bench share it.
        .target(name: "AgentdClient", dependencies: ["AgentdBase", "COpenSSL"]),
        // `agentd mcp`: a stdio MCP server that is a client of the socket (a process of its own,
        // never inside the daemon's loop).
        .target(name: "AgentdMCP", dependencies: ["AgentdClient", "AgentdBase", .product(name: "MCP", package: "swift-sdk")]),
        // Start-up, the Server glue and the command line (Sources/agentd/CLI, one file a command).
        .executableTarget(
            name: "agentd",
            dependencies: ["Reactor", "AgentdBase", "AgentdCore", "AgentdStore", "AgentdProtocol", "AgentdClient",
                           "AgentdMCP", "CProcess", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: daemonSettings
        ),
        .executableTarget(
            name: "bench",
            dependencies: ["Reactor", "AgentdClient", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "bench/Sources"
        ),
        // The Coordinator's invariants, checked from scratch: shared by the unit tests and fuzz/targets.
        .target(name: "CoordinatorInvariants", dependencies: ["AgentdCore", "AgentdBase"]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor"]),
        .testTarget(name: "agentdTests", dependencies: ["agentd", "AgentdBase", "AgentdCore", "AgentdStore",
                                                        "AgentdProtocol", "AgentdClient", "CoordinatorInvariants",
                                                        "AgentdMCP"]),
    ],
    swiftLanguageModes: [.v5]
)
