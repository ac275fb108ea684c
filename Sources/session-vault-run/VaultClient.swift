// SPDX-License-Identifier: Apache-2.0
import Foundation
import FoundationNetworking
import HTTPServerTLS

/// The end of one lease request: a response (any status) or a transport failure.
enum HTTPOutcome: Sendable {
    case response(status: Int, headers: [String: String], body: Data)
    /// No response: refused, reset, timed out, TLS failure. The text names no secret.
    case failure(String, TransportFailure)
}

/// Why a request got no response.
enum TransportFailure: Sendable, Equatable {
    /// The vault's certificate is not trusted (no CA file, the wrong one, or a certificate for
    /// another host): a configuration to fix, not an outage to wait out.
    case untrusted
    /// Anything else: refused, reset, timed out, cancelled.
    case unreachable
}

/// The vault's lease routes over URLSession (FoundationNetworking: libcurl underneath, with TLS
/// for an `https://` address), or, for an `https://` address with a CA file
/// (`SESSION_VAULT_CACERT`), over ``CAFileHTTPS``. Requests are asynchronous; each outcome is
/// posted to the wrapper's event queue, so the main loop never blocks on the network.
final class VaultClient: Sendable {
    enum AddressError: Error {
        case invalid
    }

    /// `…/v1/sessions/{name}/lease` on the configured address.
    let leaseURL: URL
    /// The address as configured, for messages.
    let address: String
    private let token: String
    private let session: URLSession
    /// With a CA file and an `https://` address: the requests go through it instead of `session`.
    private let caFileHTTPS: CAFileHTTPS?
    /// True when the requests go through ``CAFileHTTPS``.
    var usesCAFile: Bool { caFileHTTPS != nil }

    init(address: String, sessionName: String, token: String, tls: TLSClientContext? = nil) throws(AddressError) {
        guard var components = URLComponents(string: address),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty,
            components.query == nil, components.fragment == nil, components.user == nil
        else { throw .invalid }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        // The name was checked against [A-Za-z0-9._-]: nothing to escape.
        components.path = path + "/v1/sessions/\(sessionName)/lease"
        guard let url = components.url else { throw .invalid }
        self.leaseURL = url
        self.address = address
        self.token = token
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieAcceptPolicy = .never
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        self.session = URLSession(configuration: configuration)
        self.caFileHTTPS = scheme == "https" ? tls.map { CAFileHTTPS(context: $0) } : nil
    }

    /// POST: acquire with the export in the same answer.
    @discardableResult
    func acquire(format: String, holder: String, ttl: Int, wait: Int, events: EventQueue) -> any LeaseRequest {
        var components = URLComponents(url: leaseURL, resolvingAgainstBaseURL: false)
        components?.queryItems = [URLQueryItem(name: "export", value: format)]
        var request = makeRequest("POST", url: components?.url ?? leaseURL, timeout: Double(wait) + 15)
        let body: [String: Any] = ["holder": holder, "ttl_seconds": ttl, "wait_seconds": wait]
        request.httpBody = try? JSONSerialization.data(withJSONObject: body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        return send(request, as: .acquire, to: events)
    }

    /// PUT: renew the lease `leaseID`.
    func renew(leaseID: String, started: Double, timeout: Double, events: EventQueue) {
        var request = makeRequest("PUT", url: leaseURL, timeout: timeout)
        request.setValue(leaseID, forHTTPHeaderField: "Session-Vault-Lease")
        send(request, as: .renew(started: started), to: events)
    }

    /// DELETE: release the lease `leaseID`.
    func release(leaseID: String, timeout: Double, events: EventQueue) {
        var request = makeRequest("DELETE", url: leaseURL, timeout: timeout)
        request.setValue(leaseID, forHTTPHeaderField: "Session-Vault-Lease")
        send(request, as: .release, to: events)
    }

    private func makeRequest(_ method: String, url: URL, timeout: Double) -> URLRequest {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.setValue("session-vault-run", forHTTPHeaderField: "User-Agent")
        return request
    }

    @discardableResult
    private func send(_ request: URLRequest, as kind: RequestKind, to events: EventQueue) -> any LeaseRequest {
        if let caFileHTTPS {
            return caFileHTTPS.start(request) { outcome in events.post(.http(kind, outcome)) }
        }
        let task = session.dataTask(with: request) { data, response, error in
            if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (name, value) in http.allHeaderFields {
                    if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
                }
                events.post(.http(kind, .response(status: http.statusCode, headers: headers, body: data ?? Data())))
            } else {
                let text = error.map { String(describing: $0.localizedDescription) } ?? "no response"
                events.post(.http(kind, .failure(text, Self.isUntrusted(text) ? .untrusted : .unreachable)))
            }
        }
        task.resume()
        return task
    }

    /// True for libcurl's texts of a certificate that failed verification (URLSession on Linux
    /// reports them as `NSURLErrorUnknown` with libcurl's message): the chain
    /// ("SSL certificate problem: unable to get local issuer certificate") or the name
    /// ("SSL: no alternative certificate subject name matches target host name ...").
    static func isUntrusted(_ text: String) -> Bool {
        ["SSL certificate problem", "certificate subject name", "SSL peer certificate"].contains { text.contains($0) }
    }
}

/// The members of a JSON object answer (a lease, or an RFC 9457 problem).
struct JSONObject {
    let members: [String: Any]

    init?(_ data: Data) {
        guard let value = try? JSONSerialization.jsonObject(with: data), let object = value as? [String: Any] else {
            return nil
        }
        members = object
    }

    func string(_ key: String) -> String? { members[key] as? String }

    func int(_ key: String) -> Int? {
        if let number = members[key] as? NSNumber { return number.intValue }
        return members[key] as? Int
    }

    /// True for a problem whose `type` (a URI or a bare word) or `code` ends in `suffix`.
    func isProblem(endingIn suffix: String) -> Bool {
        [string("type"), string("code"), string("error")].contains { $0?.hasSuffix(suffix) == true }
    }
}
