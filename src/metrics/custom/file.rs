//! A custom monitor's file source: a regular file, read whole up to [`MAX_OUTPUT`], failing
//! when it is older than its `max_age_seconds`.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::MAX_OUTPUT;
use crate::config::read::open_nonblocking;
use crate::ioerr::io_reason;

pub fn read(path: &Path, max_age: Option<Duration>) -> Result<String, String> {
    let file = open_nonblocking(path).map_err(|err| format!("cannot open: {}", io_reason(&err)))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot stat: {}", io_reason(&err)))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if let Some(max_age) = max_age {
        let written = meta
            .modified()
            .map_err(|err| format!("no modification time: {}", io_reason(&err)))?;
        // A time ahead of the clock counts as fresh: the file was just written.
        let age = SystemTime::now()
            .duration_since(written)
            .unwrap_or_default();
        if age > max_age {
            return Err(format!(
                "last written {} s ago, more than max_age_seconds {}",
                age.as_secs(),
                max_age.as_secs()
            ));
        }
    }
    let mut text = Vec::new();
    file.take(MAX_OUTPUT as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|err| format!("cannot read: {}", io_reason(&err)))?;
    if text.len() > MAX_OUTPUT {
        return Err(format!("longer than {} KiB", MAX_OUTPUT / 1024));
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}
