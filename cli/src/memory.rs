//! The allocator's settings for long runs.

/// Fixes glibc's mmap threshold (unless `MALLOC_MMAP_THRESHOLD_` sets one). By default glibc
/// raises the threshold each time a large mapped block is freed, up to 32 MiB; blocks below
/// it then come from the heap and, once freed, stay in the process. A 50M-tick `run` stepped
/// up by ~100 MiB of RSS at about 35M ticks that way and stayed there; with the threshold
/// fixed, a commit's row buffers and Parquet pages are mapped and given back when freed, and
/// the same run stays within 142..194 MiB (BENCHMARKS.md, the soak).
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // Bytes from which a block gets a mapping of its own.
        const MMAP_THRESHOLD: i32 = 4 << 20;
        // SAFETY: mallopt only sets an allocator parameter; called once, before any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
