// swift-tools-version:6.2
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

/// Every Swift target builds in Swift 6 language mode with strict concurrency,
/// and no warning survives: CI and developers build the same way.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "session-vault",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "session-vault", targets: ["session-vault"]),
        // The wrapper behind `session-vault run` (RunCommand.swift says why it is separate).
        .executable(name: "session-vault-run", targets: ["session-vault-run"]),
        // Library products so that the sibling Fuzz/ package can depend on them.
        .library(name: "VaultCore", targets: ["VaultCore"]),
        .library(name: "HTTPServer", targets: ["HTTPServer"]),
    ],
    dependencies: [
        // Pinned exactly: an image built next month resolves the same version (Package.resolved stays
        // ignored, since the local package mirror's commit ids differ from upstream's).
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        // The logging API (`Logger`): HTTPServer and VaultAPI log through it; VaultAPI's `VaultLogHandler`
        // writes the lines.
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // libssl for the TLS transport; only HTTPServerTLS imports it.
        .systemLibrary(name: "COpenSSLTLS", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        // libpq-fe.h for the PostgreSQL engine's types; libpq itself is loaded with dlopen (LibPQ.swift)
        // when a PostgreSQL store opens, so it is not linked and the SQLite default never maps it.
        .systemLibrary(name: "CLibPQ", providers: [.apt(["libpq-dev"])]),
        .target(name: "CSocketShims"),
        // The lock and the wall clock shared by every module (no C library, no HTTP, no sessions).
        .target(name: "Primitives", swiftSettings: strict),
        .target(name: "VaultCore", dependencies: ["CSQLite", "COpenSSL", "CLibPQ", "Primitives"], swiftSettings: strict),
        .target(
            name: "HTTPServer",
            dependencies: ["CSocketShims", "Primitives", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "HTTPServerTLS",
            dependencies: ["HTTPServer", "COpenSSLTLS", "Primitives", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "VaultAPI",
            dependencies: ["VaultCore", "HTTPServer", "Primitives", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "session-vault",
            dependencies: [
                "VaultAPI", "VaultCore", "HTTPServer", "HTTPServerTLS", "CSocketShims", "RunOptions", "Primitives",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict,
            // lld with packed relative relocations (DT_RELR, glibc >= 2.36, as in the bookworm
            // image): the ~40,000 relative relocations of the PIE take 7.5 KiB instead of 930 KiB,
            // which the loader no longer reads at start-up (RssFile -0.8 to -1.2 MiB in bench/export_rss.sh).
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux]))
            ]
        ),
        .target(
            name: "RunOptions",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "session-vault-run",
            dependencies: [
                // HTTPServerTLS for its client side (OpenSSL): HTTPS with SESSION_VAULT_CACERT (CAFileHTTPS.swift).
                "RunOptions", "CSocketShims", "HTTPServerTLS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VaultCoreTests",
            dependencies: ["VaultCore", "Primitives"],
            resources: [.copy("Vectors")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HTTPServerTests",
            dependencies: ["HTTPServer", "Primitives", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VaultAPITests",
            dependencies: ["VaultAPI", "VaultCore", "HTTPServer", "Primitives", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
    ]
)
