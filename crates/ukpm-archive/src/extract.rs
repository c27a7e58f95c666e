//! Safe extraction of a tar image layer into a user's folder.
//!
//! Unpacking a layer must never write outside the target folder, whatever the layer holds:
//! names with `..`, absolute names, symlinks pointing out, or a symlink planted by one entry and
//! written through by the next. It must also keep what makes the files usable: permission bits,
//! symlinks and hard links. (KraftKit joins entry names onto the folder unchecked and drops modes
//! and links.)
//!
//! The rules, which the tests pin down:
//! - names lose leading `/` and `./` and every `.` component; a `..` component is refused;
//! - no existing symlink is ever followed while writing: a symlink among the parents of an entry
//!   is refused, and an existing file or symlink at an entry's own path is removed, not opened;
//! - a symlink's target must be relative, and may climb with `..` only at its start and no higher
//!   than the folder; so, since directories are never replaced, every symlink written resolves
//!   inside the folder however links are chained;
//! - a hard link must name a regular file this extraction wrote;
//! - device nodes and fifos are refused: the layer fails, nothing is created for them;
//! - pax global headers and entry types tar does not know are skipped (with a log line);
//! - owners and times are not kept.
//!
//! Decompression is not done here: the caller wraps the reader.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fs_err::os::unix::fs::OpenOptionsExt;
use tar::EntryType;

/// Why a layer could not be extracted. Nothing outside the target folder has been touched when
/// any of these is returned; inside it, the entries before the failing one are in place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// An entry's name climbs out of the folder, or passes through a symlink.
    #[error("layer entry `{entry}` would be written outside the target folder")]
    PathEscape {
        /// The entry name as found in the layer.
        entry: String,
    },
    /// A symlink or hard link points outside the folder (or, for a hard link, at something that
    /// is not a regular file of this layer).
    #[error("layer entry `{entry}` links to `{target}`, which is not a safe target inside the target folder")]
    LinkEscape {
        /// The entry name as found in the layer.
        entry: String,
        /// The link target as found in the layer.
        target: String,
    },
    /// A file system operation in the folder failed.
    #[error("cannot extract to {}", path.display())]
    Io {
        /// The path being written or inspected.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The layer is not a well-formed tar archive, or it ends too early.
    #[error("the layer is not a valid tar archive")]
    Tar(#[source] io::Error),
    /// Something that is not a directory is where a directory must go (the target folder
    /// itself, or a parent of an entry).
    #[error("{} is not a directory, but the layer needs a directory there", path.display())]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A device node or fifo: refused, never created.
    #[error("layer entry `{entry}` is a {kind}, which ukpm refuses to create")]
    Unsupported {
        /// The entry name as found in the layer.
        entry: String,
        /// Its kind (`char`, `block`, `fifo`).
        kind: String,
    },
    /// A directory is where the layer wants a file or link; directories are never replaced.
    #[error("{} is a directory, but layer entry `{entry}` is not", path.display())]
    DirectoryInTheWay {
        /// The directory in the way.
        path: PathBuf,
        /// The entry name as found in the layer.
        entry: String,
    },
}

/// Extracts the tar archive read from `reader` into the existing directory `dest`, so an image
/// layer can be unpacked into a user's folder without any risk to the rest of the file system.
///
/// Returns the paths, relative to `dest`, of the regular files (hard links included) the layer
/// leaves in place, in the order they were written. See the module documentation for the rules.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<Vec<PathBuf>, ExtractError> {
    let meta = fs_err::metadata(dest).map_err(io_at(dest))?;
    if !meta.is_dir() {
        return Err(ExtractError::NotADirectory {
            path: dest.to_path_buf(),
        });
    }
    let mut state = State {
        dest,
        files: Vec::new(),
        file_set: HashSet::new(),
        dir_modes: BTreeMap::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(ExtractError::Tar)? {
        let mut entry = entry.map_err(ExtractError::Tar)?;
        state.entry(&mut entry)?;
    }
    state.finish()
}

/// Maps an `io::Error` about `path` to [`ExtractError::Io`].
fn io_at(path: &Path) -> impl Fn(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Normalises a name from the archive: leading `/`, empty and `.` components dropped. `None` if
/// a component is `..`. An empty result names the folder itself.
fn normalise(name: &[u8]) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for component in name.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return None,
            c => rel.push(OsStr::from_bytes(c)),
        }
    }
    Some(rel)
}

/// Whether a symlink at `rel` (relative to the folder) with `target` stays inside the folder:
/// the target is relative, and its `..` components all come first and climb no higher than the
/// folder. Refusing `..` after a name closes the chained-link attack (`x -> .`, `y -> x/..`),
/// which a purely lexical check lets through.
fn symlink_stays_inside(rel: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return false;
    }
    let mut depth = rel.components().count().saturating_sub(1);
    let mut descended = false;
    for component in target.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if descended || depth == 0 => return false,
            b".." => depth -= 1,
            _ => descended = true,
        }
    }
    true
}

/// What was at an entry's own path before it is written.
enum Existing {
    /// Nothing, or a file or symlink that has now been removed.
    Nothing,
    /// A real directory (never removed).
    Directory,
}

/// The state of one [`extract`] run.
struct State<'a> {
    dest: &'a Path,
    /// Regular files written and still in place, in order.
    files: Vec<PathBuf>,
    /// The same, for lookups.
    file_set: HashSet<PathBuf>,
    /// Final modes of the directories of the layer, applied at the end.
    dir_modes: BTreeMap<PathBuf, u32>,
}

impl State<'_> {
    /// Extracts one entry.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link => {}
            // A unikernel image has no use for device nodes, and creating one in a user's folder
            // would hand out access to a device: refuse the layer.
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(ExtractError::Unsupported {
                    entry: name,
                    kind: format!("{kind:?}").to_lowercase(),
                });
            }
            EntryType::XGlobalHeader => {
                tracing::debug!(entry = %name, "skipping a pax global header");
                return Ok(());
            }
            other => {
                tracing::warn!(entry = %name, kind = ?other, "skipping a layer entry of unknown type");
                return Ok(());
            }
        }
        let rel = normalise(&raw_name).ok_or_else(|| ExtractError::PathEscape { entry: name.clone() })?;
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let mode = entry.header().mode().map_err(ExtractError::Tar)? & 0o7777;
        if let Some(parent) = rel.parent() {
            self.real_dirs(parent, true).map_err(|e| e.for_entry(&name))?;
        }
        match kind {
            EntryType::Directory => self.directory(&rel, mode),
            EntryType::Symlink => self.symlink(entry, &rel, &name),
            EntryType::Link => self.hard_link(entry, &rel, &name),
            _ => self.file(entry, &rel, mode, &name),
        }
    }

    /// Checks that every component of `rel` is a real directory under the folder (not a
    /// symlink), creating missing ones with mode 0755 if `create`.
    fn real_dirs(&self, rel: &Path, create: bool) -> Result<(), WalkError> {
        let mut path = self.dest.to_path_buf();
        for component in rel.components() {
            path.push(component);
            match fs_err::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => return Err(WalkError::Symlink),
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(WalkError::Other(ExtractError::NotADirectory { path })),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs_err::create_dir(&path).map_err(io_at(&path))?;
                    set_mode(&path, 0o755)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(WalkError::Missing),
                Err(e) => return Err(WalkError::Other(io_at(&path)(e))),
            }
        }
        Ok(())
    }

    /// Makes room at `rel`: removes a file or symlink found there (never following it), leaves a
    /// directory alone and says so.
    fn clear(&mut self, rel: &Path) -> Result<Existing, ExtractError> {
        let path = self.dest.join(rel);
        match fs_err::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(Existing::Directory),
            Ok(_) => {
                fs_err::remove_file(&path).map_err(io_at(&path))?;
                if self.file_set.remove(rel) {
                    self.files.retain(|f| f != rel);
                }
                Ok(Existing::Nothing)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Nothing),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Like [`State::clear`], for an entry that is not a directory.
    fn clear_for_non_dir(&mut self, rel: &Path, name: &str) -> Result<PathBuf, ExtractError> {
        let path = self.dest.join(rel);
        match self.clear(rel)? {
            Existing::Directory => Err(ExtractError::DirectoryInTheWay {
                path,
                entry: name.to_owned(),
            }),
            Existing::Nothing => Ok(path),
        }
    }

    /// Records a regular file now in place.
    fn record_file(&mut self, rel: &Path) {
        if self.file_set.insert(rel.to_path_buf()) {
            self.files.push(rel.to_path_buf());
        }
    }

    /// Writes a regular file with its data and mode.
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        mode: u32,
        name: &str,
    ) -> Result<(), ExtractError> {
        let path = self.clear_for_non_dir(rel, name)?;
        // `create_new` fails rather than follow a symlink that appeared since `clear`.
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ExtractError::Tar(e)),
            };
            file.write_all(&buf[..n]).map_err(io_at(&path))?;
            copied += n as u64;
        }
        if copied != entry.size() {
            return Err(ExtractError::Tar(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry `{name}` ends after {copied} of its {} bytes", entry.size()),
            )));
        }
        // Set on the open file, after writing, so neither the umask nor a read-only mode gets in
        // the way.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_at(&path))?;
        self.record_file(rel);
        Ok(())
    }

    /// Creates a directory (or keeps a real one), owner-writable until [`State::finish`].
    fn directory(&mut self, rel: &Path, mode: u32) -> Result<(), ExtractError> {
        let path = self.dest.join(rel);
        if let Existing::Nothing = self.clear(rel)? {
            fs_err::create_dir(&path).map_err(io_at(&path))?;
        }
        set_mode(&path, mode | 0o700)?;
        self.dir_modes.insert(rel.to_path_buf(), mode);
        Ok(())
    }

    /// Creates a symlink whose target stays inside the folder.
    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        rel: &Path,
        name: &str,
    ) -> Result<(), ExtractError> {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        if !symlink_stays_inside(rel, &target) {
            return Err(ExtractError::LinkEscape {
                entry: name.to_owned(),
                target: String::from_utf8_lossy(&target).into_owned(),
            });
        }
        let path = self.clear_for_non_dir(rel, name)?;
        fs_err::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(io_at(&path))
    }

    /// Creates a hard link to a regular file this extraction wrote.
    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        rel: &Path,
        name: &str,
    ) -> Result<(), ExtractError> {
        let raw_target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let escape = || ExtractError::LinkEscape {
            entry: name.to_owned(),
            target: String::from_utf8_lossy(&raw_target).into_owned(),
        };
        let target_rel = normalise(&raw_target)
            .filter(|t| !t.as_os_str().is_empty())
            .ok_or_else(escape)?;
        if !self.file_set.contains(&target_rel) {
            return Err(escape());
        }
        if let Some(parent) = target_rel.parent() {
            self.real_dirs(parent, false).map_err(|e| match e {
                WalkError::Other(e) => e,
                WalkError::Symlink | WalkError::Missing => escape(),
            })?;
        }
        let target = self.dest.join(&target_rel);
        let meta = fs_err::symlink_metadata(&target).map_err(io_at(&target))?;
        if !meta.is_file() {
            return Err(escape());
        }
        if target_rel == rel {
            // A link to itself: the file is already there.
            return Ok(());
        }
        let path = self.clear_for_non_dir(rel, name)?;
        fs_err::hard_link(&target, &path).map_err(io_at(&path))?;
        self.record_file(rel);
        Ok(())
    }

    /// Applies the final directory modes, deepest first so that a read-only directory does not
    /// stop its children from being changed, and returns the files written.
    fn finish(self) -> Result<Vec<PathBuf>, ExtractError> {
        let mut dirs: Vec<_> = self.dir_modes.into_iter().collect();
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, mode) in dirs {
            let path = self.dest.join(rel);
            let meta = fs_err::symlink_metadata(&path).map_err(io_at(&path))?;
            // Directories are never replaced, so this holds; checked anyway, as a chmod through
            // a symlink would change something outside the folder.
            if meta.is_dir() {
                set_mode(&path, mode)?;
            }
        }
        Ok(self.files)
    }
}

/// Sets the permission bits of `path` (which is known not to be a symlink).
fn set_mode(path: &Path, mode: u32) -> Result<(), ExtractError> {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

/// Why a walk down existing directories stopped.
enum WalkError {
    /// A component is a symlink.
    Symlink,
    /// A component does not exist (only when not creating).
    Missing,
    /// Anything else, already a full error.
    Other(ExtractError),
}

impl From<ExtractError> for WalkError {
    fn from(e: ExtractError) -> Self {
        Self::Other(e)
    }
}

impl WalkError {
    /// The error for an entry whose parents were being walked.
    fn for_entry(self, name: &str) -> ExtractError {
        match self {
            Self::Symlink | Self::Missing => ExtractError::PathEscape {
                entry: name.to_owned(),
            },
            Self::Other(e) => e,
        }
    }
}

#[cfg(test)]
mod tests;
