// swift-tools-version:6.2
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

// libFuzzer targets for session-vault. A separate package because a fuzz target's
// `LLVMFuzzerTestOneInput` plus libFuzzer's `main` would collide with vaultd's `@main` when the
// root package is built with `--sanitize=fuzzer` (the sanitizer and fuzzer builds cannot share one build folder). Build one product at a time:
//
//     swift build -c release --sanitize=fuzzer --sanitize=address --product FuzzEnvelopeOpen
//
// SwiftPM adds `-parse-as-library` and links libFuzzer's `main` only with `--sanitize=fuzzer`;
// without it these executables have no entry point and do not link. scripts/fuzz.sh drives them.

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "session-vault-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "session-vault", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "FuzzEnvelopeOpen",
            dependencies: [.product(name: "VaultCore", package: "session-vault")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FuzzSessionFile",
            dependencies: [.product(name: "VaultCore", package: "session-vault")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FuzzSessionString",
            dependencies: [.product(name: "VaultCore", package: "session-vault")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FuzzHTTPParser",
            dependencies: [.product(name: "HTTPServer", package: "session-vault")],
            swiftSettings: strict
        ),
    ]
)
