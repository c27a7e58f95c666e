//! The times packing writes: `SOURCE_DATE_EPOCH` when set, else the clock; formatting lives in
//! ukpm-types.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The time reproducible builds agree on: `SOURCE_DATE_EPOCH` when set, so packing the same
/// inputs twice writes the same bytes.
pub fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<i64>().map(Some).map_err(|_| {
            Error::InvalidInput(format!(
                "SOURCE_DATE_EPOCH `{v}` is not a whole number of seconds"
            ))
        }),
        _ => Ok(None),
    }
}

/// Now, or `SOURCE_DATE_EPOCH` when set, for the local store's own records.
pub fn now_or_epoch() -> Result<i64> {
    Ok(source_date_epoch()?.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }))
}

pub use ukpm_types::{parse_rfc3339, rfc3339};
