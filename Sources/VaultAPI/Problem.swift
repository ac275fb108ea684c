// SPDX-License-Identifier: Apache-2.0

/// An RFC 9457 problem: the one error shape every `/v1` failure is answered with.
///
/// `detail` names the offending field in words and `field` names it for programs. Neither ever
/// contains a secret or echoes request bytes beyond a validated field name.
public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
    /// HTTP status code (4xx for the caller's mistakes; 5xx only for the vault's own failures).
    public var status: Int
    /// Short, stable summary of the problem type (the status's meaning).
    public var title: String
    /// Human-readable explanation naming the field.
    public var detail: String
    /// The request field at fault, when there is one (`name`, `session_string`, `api_id`, …).
    public var field: String?
    /// Every field that is missing, for conversions that lack data.
    public var missingFields: [String]
    /// Extra headers to send with the problem (e.g. `Retry-After`, `WWW-Authenticate`).
    public var headers: [(String, String)]
    /// The problem type URI: `about:blank` (the status says it all) unless a type of this API's
    /// own applies (``leaseTypePrefix``).
    public var type = "about:blank"
    /// Extension members after the standard ones (a lease conflict's `holder`, `expires_at`).
    public var members: [(String, JSONValue)] = []

    public init(
        status: Int, title: String, detail: String, field: String? = nil, missingFields: [String] = [],
        headers: [(String, String)] = []
    ) {
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.missingFields = missingFields
        self.headers = headers
    }

    public static func == (lhs: Problem, rhs: Problem) -> Bool {
        lhs.status == rhs.status && lhs.title == rhs.title && lhs.detail == rhs.detail
            && lhs.field == rhs.field && lhs.missingFields == rhs.missingFields
    }

    public var description: String { "\(status) \(title): \(detail)" }

    /// The JSON body (`application/problem+json`).
    public var body: [UInt8] {
        var members: [(String, JSONValue)] = [
            ("type", .string(type)),
            ("title", .string(title)),
            ("status", .int(Int64(status))),
            ("detail", .string(detail)),
        ]
        if let field { members.append(("field", .string(field))) }
        if !missingFields.isEmpty { members.append(("missing_fields", .array(missingFields.map { .string($0) }))) }
        members.append(contentsOf: self.members)
        return JSONWriter.encode(.object(members))
    }

    // MARK: Common problems

    /// 422: a field is present but invalid. `detail` may already start with `field: ` (a codec's
    /// own message): the field is named once either way.
    public static func invalid(_ field: String, _ detail: String) -> Problem {
        Problem(status: 422, title: "Unprocessable Content", detail: named(field, detail), field: field)
    }

    /// `detail` prefixed with `field: ` unless it already starts so (no `f: f: …`).
    public static func named(_ field: String, _ detail: String) -> String {
        detail.hasPrefix(field + ": ") ? detail : "\(field): \(detail)"
    }

    /// 422: a required field is absent.
    public static func missing(_ field: String) -> Problem {
        Problem(status: 422, title: "Unprocessable Content", detail: "\(field): is required", field: field,
                missingFields: [field])
    }

    /// 400: the body is not parseable at all.
    public static func badRequest(_ detail: String, field: String? = nil) -> Problem {
        Problem(status: 400, title: "Bad Request", detail: detail, field: field)
    }

    /// 404 for a resource that does not exist.
    public static func notFound(_ detail: String) -> Problem {
        Problem(status: 404, title: "Not Found", detail: detail)
    }
}

/// Reads a JSON object member by member with precise, field-naming errors, and refuses members
/// the endpoint does not know (a typo must not be silently ignored in a secrets service).
public struct JSONObjectReader {
    private let members: [(String, JSONValue)]

    /// - Throws: ``Problem`` 422 if `value` is not an object or has a member outside `allowed`
    ///   (the detail lists the accepted fields).
    public init(_ value: JSONValue, allowed: Set<String>) throws(Problem) {
        guard case .object(let members) = value else {
            throw Problem(status: 422, title: "Unprocessable Content", detail: "body: must be a JSON object", field: "body")
        }
        for (key, _) in members where !allowed.contains(key) {
            let name = JSONParser.printable(key)
            throw Problem(status: 422, title: "Unprocessable Content",
                          detail: "\(name): unknown field; accepted fields: \(allowed.sorted().joined(separator: ", "))",
                          field: name)
        }
        self.members = members
    }

    /// The raw member, or nil when absent. JSON `null` counts as absent.
    public func value(_ key: String) -> JSONValue? {
        guard let v = members.first(where: { $0.0 == key })?.1 else { return nil }
        if case .null = v { return nil }
        return v
    }

    /// True when the member is present (even as `null`).
    public func has(_ key: String) -> Bool { members.contains { $0.0 == key } }

    /// A string member.
    public func string(_ key: String) throws(Problem) -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw .invalid(key, "must be a string, got \(v.typeName)") }
        return s
    }

    /// An integer member within `range`.
    public func int(_ key: String, in range: ClosedRange<Int64>) throws(Problem) -> Int64? {
        guard let v = value(key) else { return nil }
        switch v {
        case .int(let n):
            guard range.contains(n) else { throw .invalid(key, "must be between \(range.lowerBound) and \(range.upperBound)") }
            return n
        case .number:
            throw .invalid(key, "must be an integer between \(range.lowerBound) and \(range.upperBound)")
        default:
            throw .invalid(key, "must be an integer, got \(v.typeName)")
        }
    }

    /// A boolean member.
    public func bool(_ key: String) throws(Problem) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw .invalid(key, "must be a boolean, got \(v.typeName)") }
        return b
    }

    /// An array-of-strings member.
    public func strings(_ key: String, maxCount: Int) throws(Problem) -> [String]? {
        guard let v = value(key) else { return nil }
        guard case .array(let items) = v else { throw .invalid(key, "must be an array of strings") }
        guard items.count <= maxCount else { throw .invalid(key, "must have at most \(maxCount) entries") }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else { throw .invalid(key, "must be an array of strings") }
            out.append(s)
        }
        return out
    }

    /// A required member.
    public func required<T>(_ key: String, _ read: (String) throws(Problem) -> T?) throws(Problem) -> T {
        guard let v = try read(key) else { throw .missing(key) }
        return v
    }
}
