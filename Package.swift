// swift-tools-version:6.0
import PackageDescription

/// The daemon is single-threaded and its tests run in debug, where exclusivity is still checked;
/// in release the dynamic checks on every class property access cost about 6% of the hot path.
let releaseSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "agentd",
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .library(name: "Reactor", targets: ["Reactor"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    dependencies: [
        // Latency percentiles in the bench only; the daemon depends on nothing but libuv and SQLite.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CUV", path: "Sources/CUV", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Reactor", dependencies: ["CUV"], swiftSettings: releaseSettings),
        // Test-only: a SQLite VFS that keeps unsynced writes in memory, so a kill is a power cut.
        .target(name: "CPowerLoss", path: "Sources/CPowerLoss", linkerSettings: [.linkedLibrary("sqlite3")]),
        .executableTarget(
            name: "agentd",
            dependencies: ["Reactor", "CSQLite", "CPowerLoss"],
            swiftSettings: releaseSettings
        ),
        .executableTarget(
            name: "bench",
            dependencies: ["Reactor", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "bench/Sources"
        ),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor"]),
        .testTarget(name: "agentdTests", dependencies: ["agentd"]),
    ],
    swiftLanguageModes: [.v5]
)
