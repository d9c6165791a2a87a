//! Windows (and anything else): the same checks with std, on paths. No other user shares a
//! Windows service's state directory by default (it is under ProgramData, writable by
//! administrators), so there is no owner to hand files to.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::Dir;
use crate::state::error::Denied;

fn plain(dir: &Dir, name: &str) -> io::Result<std::path::PathBuf> {
    if name.is_empty() || name.contains(['/', '\\', ':']) || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain file name",
        ));
    }
    Ok(dir.path.join(name))
}

/// Links are not followed: one where a file should be is an error.
fn no_link(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link, which is never followed here; remove it",
        )),
        Ok(_) => Ok(()),
        Err(err) => Err(err),
    }
}

pub fn open_dir(path: &Path) -> io::Result<Dir> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        no_link(path)?;
    }
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(Dir {
        path: path.to_path_buf(),
    })
}

pub fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
    let path = plain(dir, name)?;
    no_link(&path)?;
    File::open(path)
}

pub fn open_write(dir: &Dir, name: &str) -> io::Result<File> {
    let path = plain(dir, name)?;
    match no_link(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

pub fn open_rw(dir: &Dir, name: &str) -> io::Result<File> {
    let path = plain(dir, name)?;
    match no_link(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

pub fn create_new(dir: &Dir, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(plain(dir, name)?)
}

/// No owner to hand a directory to on Windows: administrators own ProgramData's.
pub fn give_to(dir: Dir, _user: &str) -> io::Result<Dir> {
    Ok(dir)
}

pub fn rename(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    fs::rename(plain(dir, from)?, plain(dir, to)?)
}

pub fn remove(dir: &Dir, name: &str) -> io::Result<()> {
    fs::remove_file(plain(dir, name)?)
}

/// Windows cannot open a directory to flush it; the file's own flush is what it offers.
pub fn sync_dir(_dir: &Dir) -> io::Result<()> {
    Ok(())
}

pub fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    write_at(file, bytes, 0)
}

pub fn read_at(mut file: &File, bytes: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    loop {
        match file.read(bytes) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

pub fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

pub fn writable(dir: &Dir) -> bool {
    fs::metadata(&dir.path).is_ok_and(|meta| !meta.permissions().readonly())
}

/// No other user shares it here (see above): the read-only flag is all there is to ask.
pub fn writable_by(path: &Path, _owner: Option<&str>) -> Result<(), Denied> {
    let meta = fs::metadata(path).map_err(|err| Denied::Stat {
        error: err.to_string(),
    })?;
    match meta.permissions().readonly() {
        true => Err(Denied::ReadOnly),
        false => Ok(()),
    }
}
