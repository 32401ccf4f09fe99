//! Opening input files: only regular files are read. A FIFO, a device or a socket named as an
//! image or as an image's data file would block the reader or never end.

use std::fs::File;
use std::path::Path;

use crate::error::{IoError, Result};

/// Opens `path` for reading when it is a regular file (symlinks followed), else an error
/// naming it.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| IoError::io(path, e))?;
    if !meta.is_file() {
        return Err(IoError::format(
            path,
            "not a regular file (a FIFO, device, socket or folder cannot be read as image data)",
        ));
    }
    File::open(path).map_err(|e| IoError::io(path, e))
}

/// The detached data file `name` of the header at `header` (beside it), opened when it is a
/// regular file, with its length.
pub(crate) fn open_data_file(
    header: &Path,
    name: &str,
) -> Result<(std::io::BufReader<File>, std::path::PathBuf, u64)> {
    let path = header.parent().unwrap_or(Path::new(".")).join(name);
    let file = open_regular(&path)?;
    let len = file.metadata().map_err(|e| IoError::io(&path, e))?.len();
    Ok((std::io::BufReader::new(file), path, len))
}
