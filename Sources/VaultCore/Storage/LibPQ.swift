// SPDX-License-Identifier: Apache-2.0
internal import CLibPQ

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// The libpq functions the PostgreSQL engine calls, loaded with `dlopen` the first time a
/// PostgreSQL store opens, not linked into the process.
///
/// Why: libpq brings about twenty shared libraries (GnuTLS, Kerberos, LDAP, …). Linked, they are
/// mapped and relocated at every start, PostgreSQL or not: the release `serve` of the embedded
/// SQLite default went from 18.4 to 22.5 MiB peak RSS under the export benchmark
/// (`bench/export_rss.sh`, BENCHMARKS.md). Loaded on demand, only a PostgreSQL vault pays for
/// them. The types still come from `libpq-fe.h` (`CLibPQ`, a header-only system module).
struct LibPQ: @unchecked Sendable {
    typealias Connect = @convention(c) (
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?, Int32
    ) -> OpaquePointer?
    typealias Status = @convention(c) (OpaquePointer?) -> ConnStatusType
    typealias Free = @convention(c) (OpaquePointer?) -> Void
    typealias Message = @convention(c) (OpaquePointer?) -> UnsafeMutablePointer<CChar>?
    typealias ResultStatus = @convention(c) (OpaquePointer?) -> ExecStatusType
    typealias Count = @convention(c) (OpaquePointer?) -> Int32
    typealias Exec = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> OpaquePointer?
    typealias Prepare = @convention(c) (
        OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32, UnsafePointer<Oid>?
    ) -> OpaquePointer?
    typealias ExecPrepared = @convention(c) (
        OpaquePointer?, UnsafePointer<CChar>?, Int32, UnsafePointer<UnsafePointer<CChar>?>?,
        UnsafePointer<Int32>?, UnsafePointer<Int32>?, Int32
    ) -> OpaquePointer?
    typealias ErrorField = @convention(c) (OpaquePointer?, Int32) -> UnsafeMutablePointer<CChar>?
    typealias CellText = @convention(c) (OpaquePointer?, Int32, Int32) -> UnsafeMutablePointer<CChar>?
    typealias CellInt = @convention(c) (OpaquePointer?, Int32, Int32) -> Int32

    let connectdbParams: Connect
    let status: Status
    let finish: Free
    let errorMessage: Message
    let exec: Exec
    let prepare: Prepare
    let execPrepared: ExecPrepared
    let resultStatus: ResultStatus
    let resultErrorField: ErrorField
    let ntuples: Count
    let clear: Free
    let getvalue: CellText
    let getlength: CellInt
    let getisnull: CellInt

    /// The loaded library, or why it could not be loaded (once per process).
    static let shared: Result<LibPQ, StorageError> = load()

    private static func load() -> Result<LibPQ, StorageError> {
        let missing = StorageError.unavailable(
            reason: "PostgreSQL storage needs libpq (libpq.so.5; Debian: apt-get install libpq5)")
        guard let library = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libpq.so", RTLD_NOW | RTLD_LOCAL) else {
            return .failure(missing)
        }
        // The handle stays open for the process's life: the engine's connections use it.
        func symbol<T>(_ name: String, as _: T.Type) -> T? {
            dlsym(library, name).map { unsafeBitCast($0, to: T.self) }
        }
        guard let connectdbParams = symbol("PQconnectdbParams", as: Connect.self),
            let status = symbol("PQstatus", as: Status.self),
            let finish = symbol("PQfinish", as: Free.self),
            let errorMessage = symbol("PQerrorMessage", as: Message.self),
            let exec = symbol("PQexec", as: Exec.self),
            let prepare = symbol("PQprepare", as: Prepare.self),
            let execPrepared = symbol("PQexecPrepared", as: ExecPrepared.self),
            let resultStatus = symbol("PQresultStatus", as: ResultStatus.self),
            let resultErrorField = symbol("PQresultErrorField", as: ErrorField.self),
            let ntuples = symbol("PQntuples", as: Count.self),
            let clear = symbol("PQclear", as: Free.self),
            let getvalue = symbol("PQgetvalue", as: CellText.self),
            let getlength = symbol("PQgetlength", as: CellInt.self),
            let getisnull = symbol("PQgetisnull", as: CellInt.self)
        else {
            return .failure(missing)
        }
        return .success(LibPQ(
            connectdbParams: connectdbParams, status: status, finish: finish, errorMessage: errorMessage, exec: exec,
            prepare: prepare, execPrepared: execPrepared, resultStatus: resultStatus, resultErrorField: resultErrorField,
            ntuples: ntuples, clear: clear, getvalue: getvalue, getlength: getlength, getisnull: getisnull))
    }
}
