// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Glibc
import RunOptions

/// `session-vault run`: checks its flags, then execs `session-vault-run` (installed beside this
/// binary) with them.
///
/// The wrapper is a second executable because it speaks HTTP and TLS through URLSession
/// (FoundationNetworking), and linking that here would load Foundation, its ICU data and libcurl
/// into every `serve` process as well; docs/leases.md ("session-vault run") has the measurement.
/// `execv` keeps the pid, so the wrapper is still PID 1 in a container.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command under the session's exclusive lease, with the session string in its environment.",
        discussion: RunOptions.discussion
    )

    @OptionGroup var options: RunOptions

    func run() throws {
        let wrapper = Self.wrapperPath()
        let arguments = [wrapper] + options.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        execv(wrapper, &argv)
        let reason = String(cString: strerror(errno))
        for pointer in argv { free(pointer) }
        var line = Array("session-vault run: cannot execute \(wrapper): \(reason)\n".utf8)
        _ = write(2, &line, line.count)
        throw ExitCode(71)  // EX_OSERR: the installation lacks its wrapper
    }

    /// `session-vault-run` in the directory of the running executable.
    static func wrapperPath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "session-vault-run" }
        let executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = executable.lastIndex(of: "/") else { return "session-vault-run" }
        return String(executable[..<slash]) + "/session-vault-run"
    }
}
