//! Size caps for the JSON documents ukpm reads whole into memory, wherever they come from (a
//! registry, the local store, containerd), so a hostile or damaged store cannot make a listing
//! allocate gigabytes.

/// The largest manifest or index ukpm reads: 4 MiB, the limit the distribution registry enforces
/// on pushes, so no registry can have served a larger one.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// The largest image config ukpm reads. A unikernel's config holds its command, environment,
/// labels and kconfig features; 8 MiB leaves room for a very long kconfig and Docker's history
/// while bounding what a forged size can make ukpm allocate.
pub const CONFIG_LIMIT: u64 = 8 << 20;
