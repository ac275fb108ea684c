// SPDX-License-Identifier: Apache-2.0
import HTTPServer

/// The route list compiled once for matching: routes grouped by pattern (for `405` and its
/// `Allow` header), patterns indexed by segment count.
///
/// Matching runs on the event loop for every request, twice (the server's placement question,
/// then dispatch), so it allocates nothing: the slashes of the path are found in the base
/// string's contiguous UTF-8 and kept in stack memory, only the patterns with the path's
/// segment count are compared, literal segments as bytes (`==` on a `Substring` compares
/// Characters, several times the cost), and the parameter comes out as a byte range.
struct RouteTable: Sendable {
    /// One path pattern and the routes declared on it, in declaration order.
    struct Path: Sendable {
        let pattern: RoutePattern
        /// Indices into ``RouteTable/routes``.
        var routes: [Int]
        /// The `Allow` header of a `405` here: the methods in declaration order, `HEAD` after them
        /// when `GET` is among them.
        var allow: String
    }

    /// The outcome of matching a request.
    enum Match {
        /// Route `route` matches; its pattern's first parameter, if any, is the path's UTF-8
        /// bytes `parameter` (offsets in the path's base string).
        case found(route: Int, parameter: Range<Int>)
        /// The path matches `path`, but no route there has the method.
        case methodNotAllowed(path: Int)
        /// No pattern matches the path.
        case notFound
    }

    let routes: [Route]
    let paths: [Path]
    /// `byCount[n]`: the indices of the paths whose patterns have `n` segments.
    let byCount: [[Int]]

    /// The most segments a pattern has; a longer path is `404` without a look at the patterns.
    let maxSegments: Int

    init(_ routes: [Route]) {
        self.routes = routes
        var paths: [Path] = []
        for (index, route) in routes.enumerated() {
            if let at = paths.firstIndex(where: { $0.pattern == route.pattern }) {
                paths[at].routes.append(index)
            } else {
                paths.append(Path(pattern: route.pattern, routes: [index], allow: ""))
            }
        }
        for i in paths.indices {
            var names = paths[i].routes.map { routes[$0].method.rawValue }
            if names.contains("GET") { names.append("HEAD") }
            paths[i].allow = names.joined(separator: ", ")
        }
        self.paths = paths
        let longest = paths.map(\.pattern.segments.count).max() ?? 0
        var byCount = [[Int]](repeating: [], count: longest + 1)
        for (i, path) in paths.enumerated() { byCount[path.pattern.segments.count].append(i) }
        self.byCount = byCount
        self.maxSegments = longest
    }

    /// The route for `method` on `path` (`HEAD` matches the `GET` route).
    func match(_ method: HTTPMethod, _ path: Substring) -> Match {
        guard let (pathIndex, parameter) = matchPath(path) else { return .notFound }
        let wanted = method == .head ? HTTPMethod.get : method
        for index in paths[pathIndex].routes where routes[index].method == wanted {
            return .found(route: index, parameter: parameter)
        }
        return .methodNotAllowed(path: pathIndex)
    }

    /// The first path whose pattern matches, and the byte range of its first parameter.
    private func matchPath(_ path: Substring) -> (Int, Range<Int>)? {
        var base = path.base
        let utf8 = base.utf8
        let lower = utf8.distance(from: utf8.startIndex, to: path.startIndex)
        let upper = utf8.distance(from: utf8.startIndex, to: path.endIndex)
        let maxSegments = maxSegments
        return base.withUTF8 { bytes -> (Int, Range<Int>)? in
            guard lower < upper, bytes[lower] == UInt8(ascii: "/") else { return nil }
            // `slash[k]`: the offset of the `/` before segment k; `slash[count]`: the end.
            return withUnsafeTemporaryAllocation(of: Int.self, capacity: maxSegments + 1) { slash -> (Int, Range<Int>)? in
                var count = 0
                for offset in lower..<upper where bytes[offset] == UInt8(ascii: "/") {
                    guard count < maxSegments else { return nil }
                    slash[count] = offset
                    count += 1
                }
                slash[count] = upper
                guard count < byCount.count else { return nil }
                candidates: for pathIndex in byCount[count] {
                    var parameter = 0..<0
                    var sawParameter = false
                    for (k, segment) in paths[pathIndex].pattern.segments.enumerated() {
                        let start = slash[k] + 1
                        let end = slash[k + 1]
                        switch segment {
                        case .literal(let literal):
                            guard literal.count == end - start else { continue candidates }
                            for i in 0..<literal.count where literal[i] != bytes[start + i] { continue candidates }
                        case .parameter:
                            if !sawParameter {
                                parameter = start..<end
                                sawParameter = true
                            }
                        }
                    }
                    return (pathIndex, parameter)
                }
                return nil
            }
        }
    }
}
