// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffer of `size` bytes per thread, allocated on the thread's first use and freed when the
/// thread exits (a pthread key's destructor). The HTTP server reads into one and the TLS transport
/// joins a response into one, so idle connections hold no buffer of their own.
public final class ThreadLocalBuffer: @unchecked Sendable {
    public let size: Int
    private let key: pthread_key_t

    public init(size: Int) {
        self.size = size
        var key = pthread_key_t()
        _ = pthread_key_create(&key) { pointer in free(pointer) }
        self.key = key
    }

    /// This thread's buffer; empty (count 0) only if the allocation failed.
    public func current() -> UnsafeMutableRawBufferPointer {
        if let existing = pthread_getspecific(key) {
            return UnsafeMutableRawBufferPointer(start: existing, count: size)
        }
        guard let fresh = malloc(size) else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        _ = pthread_setspecific(key, fresh)
        return UnsafeMutableRawBufferPointer(start: fresh, count: size)
    }
}
