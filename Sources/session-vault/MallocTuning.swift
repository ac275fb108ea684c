// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
    import CSocketShims
    import Glibc
#endif

/// glibc `malloc` settings for the server process, applied by `serve` before any thread starts.
///
/// **Why one arena.** glibc gives each thread that meets a locked arena a new one (up to 8 per
/// CPU), and every arena keeps its own free lists and high-water mark. Under an export load the
/// two Dispatch workers, the writer queue, the export-time flush and the handler-pool threads each
/// ended up with an arena of 1–5 MiB, so resident memory was the *sum* of per-thread peaks: 10–14
/// MiB anonymous against ~7 MiB of live heap (heaptrack). One arena shares the freed chunks of every
/// thread; measured with `bench/export_rss.sh`, peak RSS (VmHWM) went from 28–31 MiB to ~23.5 MiB
/// at no measurable cost in export throughput on the two-CPU bench machine (the hot paths
/// allocate little, and most of that through SQLite's per-connection lookaside).
///
/// An operator's `MALLOC_ARENA_MAX` in the environment wins: it is read by glibc itself, and this
/// setting is skipped when it is present.
enum MallocTuning {
    /// Applies the settings; a no-op off glibc.
    static func apply() {
        #if canImport(Glibc)
            guard getenv("MALLOC_ARENA_MAX") == nil else { return }
            _ = mallopt(M_ARENA_MAX, 1)
        #endif
    }
}
