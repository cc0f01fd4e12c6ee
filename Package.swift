// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "agentd",
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .library(name: "Reactor", targets: ["Reactor"]),
    ],
    targets: [
        .systemLibrary(name: "CUV", path: "Sources/CUV", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Reactor", dependencies: ["CUV"]),
        .executableTarget(
            name: "agentd",
            dependencies: ["Reactor", "CSQLite"]
        ),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor"]),
        .testTarget(name: "agentdTests", dependencies: ["agentd"]),
    ],
    swiftLanguageModes: [.v5]
)
