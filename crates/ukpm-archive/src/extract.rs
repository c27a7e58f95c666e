//! Safe extraction of a tar image layer into a user's folder.
//!
//! Unpacking a layer must never write outside the target folder, whatever the layer holds:
//! names with `..`, absolute names, symlinks pointing out, or a symlink planted by one entry and
//! written through by the next. It must also keep what makes the files usable: permission bits,
//! symlinks and hard links. (KraftKit joins entry names onto the folder unchecked and drops modes
//! and links.)
//!
//! Every tar dialect GNU tar reads is read (see the `reader` module): ustar, old GNU, GNU long
//! names and long link names, PAX extended headers (malformed records refused as Go's
//! `archive/tar` refuses them), and sparse files in the old GNU and PAX 0.0, 0.1 and 1.0
//! formats, restored with holes (the file is extended with seeks, the zeros are never written).
//! Names and link targets are taken as raw bytes, whether or not they are UTF-8.
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
//! - OCI whiteouts ([`Options::whiteouts`], on by default): `.wh.NAME` removes `NAME` as earlier
//!   extractions into the folder left it, `.wh..wh..opq` empties its directory of what earlier
//!   extractions left there; neither touches what this extraction writes, whatever the order of
//!   the entries, and whiteout files are never written;
//! - sizes are bounded ([`Options`]): the files of one extraction may not add up to more than
//!   [`Options::max_total_size`] bytes (16 GiB by default), holes of sparse files included, and a
//!   sparse file may not declare a size over [`Options::max_sparse_size`] (4 GiB by default), so a
//!   few KiB of layer cannot fill a disk;
//! - owners and times are not kept.
//!
//! Decompression is not done here: the caller wraps the reader (see [`crate::compression`]).

mod reader;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fs_err::os::unix::fs::OpenOptionsExt;
use tar::EntryType;

use crate::compression::ExpansionError;
use reader::{Member, Reader};

/// The whiteout prefix of the OCI image spec.
const WHITEOUT: &[u8] = b".wh.";
/// The opaque whiteout of the OCI image spec.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What an extraction may write, and how it treats whiteouts. The limits stop a small hostile
/// layer from filling a disk (a sparse file declares its size; only its data is stored).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The most bytes the files of one extraction may take in total, counting the holes of
    /// sparse files (their apparent size). 16 GiB by default.
    pub max_total_size: u64,
    /// The largest size a sparse file may declare. 4 GiB by default.
    pub max_sparse_size: u64,
    /// Whether `.wh.` entries are applied as OCI whiteouts (true by default). When false (for
    /// plain archives that are not image layers), a `.wh.` entry is written like any file.
    pub whiteouts: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_total_size: 16 << 30,
            max_sparse_size: 4 << 30,
            whiteouts: true,
        }
    }
}

impl Options {
    /// Sets [`Options::max_total_size`].
    #[must_use]
    pub fn max_total_size(mut self, bytes: u64) -> Self {
        self.max_total_size = bytes;
        self
    }
    /// Sets [`Options::max_sparse_size`].
    #[must_use]
    pub fn max_sparse_size(mut self, bytes: u64) -> Self {
        self.max_sparse_size = bytes;
        self
    }
    /// Sets [`Options::whiteouts`].
    #[must_use]
    pub fn whiteouts(mut self, apply: bool) -> Self {
        self.whiteouts = apply;
        self
    }
}

/// Why a layer could not be extracted. Nothing outside the target folder has been touched when
/// any of these is returned; inside it, the entries before the failing one are in place.
///
/// Entry names and link targets are kept as raw bytes (in `PathBuf`s), so a name that is not
/// UTF-8 is reported without loss; only the message renders them lossily.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// An entry's name climbs out of the folder, or passes through a symlink.
    #[error("layer entry `{}` would be written outside the target folder", entry.display())]
    PathEscape {
        /// The entry name as found in the layer.
        entry: PathBuf,
    },
    /// A symlink or hard link points outside the folder (or, for a hard link, at something that
    /// is not a regular file of this layer).
    #[error("layer entry `{}` links to `{}`, which is not a safe target inside the target folder", entry.display(), target.display())]
    LinkEscape {
        /// The entry name as found in the layer.
        entry: PathBuf,
        /// The link target as found in the layer.
        target: PathBuf,
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
    /// A header of the layer is malformed (a PAX record, a number, a sparse map), refused as Go's
    /// `archive/tar` and GNU tar refuse it.
    #[error("the layer has a malformed tar header at byte {offset}: {reason}")]
    Malformed {
        /// Where the header starts in the (decompressed) archive.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry would take the extraction past one of the [`Options`] limits.
    #[error("layer entry `{}` declares {size} bytes, past the limit of {limit} bytes ({what})", entry.display())]
    TooLarge {
        /// The entry name as found in the layer.
        entry: PathBuf,
        /// Its declared size.
        size: u64,
        /// The limit it passes.
        limit: u64,
        /// Which limit.
        what: &'static str,
    },
    /// The compressed layer expands more than allowed.
    #[error(transparent)]
    Expansion(ExpansionError),
    /// Something that is not a directory is where a directory must go (the target folder
    /// itself, or a parent of an entry).
    #[error("{} is not a directory, but the layer needs a directory there", path.display())]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A device node or fifo: refused, never created.
    #[error("layer entry `{}` is a {kind}, which ukpm refuses to create", entry.display())]
    Unsupported {
        /// The entry name as found in the layer.
        entry: PathBuf,
        /// Its kind (`char`, `block`, `fifo`).
        kind: String,
    },
    /// A directory is where the layer wants a file or link; directories are never replaced.
    #[error("{} is a directory, but layer entry `{}` is not", path.display(), entry.display())]
    DirectoryInTheWay {
        /// The directory in the way.
        path: PathBuf,
        /// The entry name as found in the layer.
        entry: PathBuf,
    },
}

impl ExtractError {
    /// The error for a failed read of the archive: an expansion past the ratio stays typed.
    pub(crate) fn from_read(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ExpansionError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(expansion) = inner.downcast::<ExpansionError>()
            {
                return ExtractError::Expansion(*expansion);
            }
            return ExtractError::Tar(io::Error::other("the layer expands too much"));
        }
        ExtractError::Tar(e)
    }
}

/// Extracts the tar archive read from `reader` into the existing directory `dest` with the
/// default [`Options`], so an image layer can be unpacked into a user's folder without any risk
/// to the rest of the file system.
///
/// Returns the paths, relative to `dest`, of the regular files (hard links included) the layer
/// leaves in place, in the order they were written. See the module documentation for the rules.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<Vec<PathBuf>, ExtractError> {
    extract_with(reader, dest, &Options::default())
}

/// [`extract`] with the caller's limits and whiteout handling.
pub fn extract_with<R: Read>(
    reader: R,
    dest: &Path,
    options: &Options,
) -> Result<Vec<PathBuf>, ExtractError> {
    let mut state = State::new(dest, options)?;
    let mut reader = Reader::new(reader);
    while let Some(member) = reader.next()? {
        state.entry(&member, &mut reader)?;
    }
    state.finish()
}

/// Writes the whole of `reader` as one regular file named `name` (raw bytes, relative to `dest`)
/// with `mode`, under the same rules as an entry of a layer: no `..`, no symlink followed, the
/// size bounded by [`Options::max_total_size`]. For layers that are a single raw file (a kernel,
/// an initrd) whose name comes from an annotation.
pub fn write_file<R: Read>(
    reader: R,
    dest: &Path,
    name: &[u8],
    mode: u32,
    options: &Options,
) -> Result<PathBuf, ExtractError> {
    let entry = PathBuf::from(OsStr::from_bytes(name));
    let mut state = State::new(dest, options)?;
    let rel = normalise(name)
        .filter(|r| !r.as_os_str().is_empty())
        .ok_or_else(|| ExtractError::PathEscape { entry: entry.clone() })?;
    if let Some(parent) = rel.parent() {
        state.real_dirs(parent, true).map_err(|e| e.for_entry(&entry))?;
    }
    let path = state.clear_for_non_dir(&rel, &entry)?;
    let mut file = create_new(&path)?;
    let limit = options.max_total_size;
    let copied =
        io::copy(&mut reader.take(limit.saturating_add(1)), &mut file).map_err(|e| match e.kind() {
            io::ErrorKind::Other if e.get_ref().is_some_and(|i| i.is::<ExpansionError>()) => {
                ExtractError::from_read(e)
            }
            _ => io_at(&path)(e),
        })?;
    if copied > limit {
        return Err(ExtractError::TooLarge {
            entry,
            size: copied,
            limit,
            what: "the total size of an extraction",
        });
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io_at(&path))?;
    Ok(rel)
}

/// Creates a new file, never following a symlink that appeared at its path.
fn create_new(path: &Path) -> Result<fs_err::File, ExtractError> {
    fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_at(path))
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
    options: &'a Options,
    /// Regular files written and still in place, in order.
    files: Vec<PathBuf>,
    /// The same, for lookups.
    file_set: HashSet<PathBuf>,
    /// Every path this extraction wrote (files, links, directories): whiteouts leave them alone.
    written: HashSet<PathBuf>,
    /// Final modes of the directories of the layer, applied at the end.
    dir_modes: BTreeMap<PathBuf, u32>,
    /// Apparent bytes of the files written so far.
    total: u64,
}

impl<'a> State<'a> {
    fn new(dest: &'a Path, options: &'a Options) -> Result<Self, ExtractError> {
        let meta = fs_err::metadata(dest).map_err(io_at(dest))?;
        if !meta.is_dir() {
            return Err(ExtractError::NotADirectory {
                path: dest.to_path_buf(),
            });
        }
        Ok(Self {
            dest,
            options,
            files: Vec::new(),
            file_set: HashSet::new(),
            written: HashSet::new(),
            dir_modes: BTreeMap::new(),
            total: 0,
        })
    }

    /// Extracts one member.
    fn entry<R: Read>(&mut self, member: &Member, reader: &mut Reader<R>) -> Result<(), ExtractError> {
        let name = PathBuf::from(OsStr::from_bytes(&member.name));
        let kind = member.kind;
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
            other => {
                tracing::warn!(entry = %name.display(), kind = ?other, "skipping a layer entry of unknown type");
                return Ok(());
            }
        }
        let rel = normalise(&member.name).ok_or_else(|| ExtractError::PathEscape { entry: name.clone() })?;
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        if self.options.whiteouts
            && let Some(base) = rel.file_name().map(OsStrExt::as_bytes)
            && base.starts_with(WHITEOUT)
        {
            return self.whiteout(&rel, base, &name);
        }
        if let Some(parent) = rel.parent() {
            self.real_dirs(parent, true).map_err(|e| e.for_entry(&name))?;
        }
        match kind {
            EntryType::Directory => self.directory(&rel, member.mode),
            EntryType::Symlink => self.symlink(member, &rel, &name),
            EntryType::Link => self.hard_link(member, &rel, &name),
            _ => self.file(member, reader, &rel, &name),
        }
    }

    /// Applies a whiteout entry at `rel` (whose last component is `base`). Its directory must be
    /// a real one inside the folder; when it does not exist there is nothing to hide.
    fn whiteout(&mut self, rel: &Path, base: &[u8], name: &Path) -> Result<(), ExtractError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        match self.real_dirs(parent, false) {
            Ok(()) => {}
            Err(WalkError::Missing) => return Ok(()),
            Err(e) => return Err(e.for_entry(name)),
        }
        if base == OPAQUE {
            return self.opaque(parent);
        }
        let hidden = &base[WHITEOUT.len()..];
        if hidden.starts_with(WHITEOUT) || hidden.is_empty() || hidden == b"." || hidden == b".." {
            tracing::warn!(entry = %name.display(), "skipping an unknown whiteout");
            return Ok(());
        }
        self.remove_lower(&parent.join(OsStr::from_bytes(hidden)))
    }

    /// Applies `.wh.NAME`: removes `rel` unless this extraction wrote it.
    fn remove_lower(&mut self, rel: &Path) -> Result<(), ExtractError> {
        if self.written.contains(rel) {
            tracing::debug!(path = %rel.display(), "a whiteout for an entry of its own layer: kept");
            return Ok(());
        }
        let path = self.dest.join(rel);
        match fs_err::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs_err::remove_dir_all(&path).map_err(io_at(&path)),
            Ok(_) => fs_err::remove_file(&path).map_err(io_at(&path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Applies `.wh..wh..opq` in directory `rel`: removes everything below it that this
    /// extraction did not write.
    fn opaque(&mut self, rel: &Path) -> Result<(), ExtractError> {
        let path = self.dest.join(rel);
        let mut children: Vec<_> = fs_err::read_dir(&path)
            .map_err(io_at(&path))?
            .collect::<io::Result<_>>()
            .map_err(io_at(&path))?;
        children.sort_by_key(fs_err::DirEntry::file_name);
        for child in children {
            let child_rel = rel.join(child.file_name());
            if self.written.contains(&child_rel) {
                let is_dir = fs_err::symlink_metadata(child.path())
                    .map_err(io_at(&child.path()))?
                    .is_dir();
                if is_dir {
                    self.opaque(&child_rel)?;
                }
            } else {
                self.remove_lower(&child_rel)?;
            }
        }
        Ok(())
    }

    /// Checks that every component of `rel` is a real directory under the folder (not a
    /// symlink), creating missing ones with mode 0755 if `create`.
    fn real_dirs(&mut self, rel: &Path, create: bool) -> Result<(), WalkError> {
        let mut path = self.dest.to_path_buf();
        let mut sub = PathBuf::new();
        for component in rel.components() {
            path.push(component);
            sub.push(component);
            match fs_err::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => return Err(WalkError::Symlink),
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(WalkError::Other(ExtractError::NotADirectory { path })),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs_err::create_dir(&path).map_err(io_at(&path))?;
                    set_mode(&path, 0o755)?;
                    self.written.insert(sub.clone());
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
    fn clear_for_non_dir(&mut self, rel: &Path, name: &Path) -> Result<PathBuf, ExtractError> {
        let path = self.dest.join(rel);
        match self.clear(rel)? {
            Existing::Directory => Err(ExtractError::DirectoryInTheWay {
                path,
                entry: name.to_path_buf(),
            }),
            Existing::Nothing => {
                self.written.insert(rel.to_path_buf());
                Ok(path)
            }
        }
    }

    /// Records a regular file now in place.
    fn record_file(&mut self, rel: &Path) {
        if self.file_set.insert(rel.to_path_buf()) {
            self.files.push(rel.to_path_buf());
        }
    }

    /// Counts `size` more bytes against the limits, before anything is written.
    fn reserve(&mut self, name: &Path, size: u64, sparse: bool) -> Result<(), ExtractError> {
        if sparse && size > self.options.max_sparse_size {
            return Err(ExtractError::TooLarge {
                entry: name.to_path_buf(),
                size,
                limit: self.options.max_sparse_size,
                what: "the size of a sparse file",
            });
        }
        let total = self.total.saturating_add(size);
        if total > self.options.max_total_size {
            return Err(ExtractError::TooLarge {
                entry: name.to_path_buf(),
                size,
                limit: self.options.max_total_size,
                what: "the total size of an extraction",
            });
        }
        self.total = total;
        Ok(())
    }

    /// Writes a regular file with its data and mode; a sparse file gets its holes by seeking,
    /// never by writing zeros.
    fn file<R: Read>(
        &mut self,
        member: &Member,
        reader: &mut Reader<R>,
        rel: &Path,
        name: &Path,
    ) -> Result<(), ExtractError> {
        match &member.sparse {
            Some(sparse) => self.reserve(name, sparse.real_size, true)?,
            None => self.reserve(name, reader.remaining(), false)?,
        }
        let path = self.clear_for_non_dir(rel, name)?;
        // `create_new` fails rather than follow a symlink that appeared since `clear`.
        let mut file = create_new(&path)?;
        let size = reader.remaining();
        let mut buf = vec![0u8; 64 * 1024];
        let mut copy = |file: &mut fs_err::File, mut len: u64| -> Result<(), ExtractError> {
            while len > 0 {
                let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
                let n = reader.read_data(&mut buf[..want])?;
                if n == 0 {
                    return Err(ExtractError::Tar(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("entry `{}` ends early", name.display()),
                    )));
                }
                file.write_all(&buf[..n]).map_err(io_at(&path))?;
                len -= n as u64;
            }
            Ok(())
        };
        match &member.sparse {
            None => copy(&mut file, size)?,
            Some(sparse) => {
                for &(offset, length) in &sparse.segments {
                    if length == 0 {
                        continue;
                    }
                    file.seek(SeekFrom::Start(offset)).map_err(io_at(&path))?;
                    copy(&mut file, length)?;
                }
                file.set_len(sparse.real_size).map_err(io_at(&path))?;
            }
        }
        // Set on the open file, after writing, so neither the umask nor a read-only mode gets in
        // the way.
        file.set_permissions(std::fs::Permissions::from_mode(member.mode))
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
        self.written.insert(rel.to_path_buf());
        set_mode(&path, mode | 0o700)?;
        self.dir_modes.insert(rel.to_path_buf(), mode);
        Ok(())
    }

    /// Creates a symlink whose target stays inside the folder.
    fn symlink(&mut self, member: &Member, rel: &Path, name: &Path) -> Result<(), ExtractError> {
        let target = &member.link;
        if !symlink_stays_inside(rel, target) {
            return Err(ExtractError::LinkEscape {
                entry: name.to_path_buf(),
                target: PathBuf::from(OsStr::from_bytes(target)),
            });
        }
        let path = self.clear_for_non_dir(rel, name)?;
        fs_err::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(io_at(&path))
    }

    /// Creates a hard link to a regular file this extraction wrote.
    fn hard_link(&mut self, member: &Member, rel: &Path, name: &Path) -> Result<(), ExtractError> {
        let raw_target = &member.link;
        let escape = || ExtractError::LinkEscape {
            entry: name.to_path_buf(),
            target: PathBuf::from(OsStr::from_bytes(raw_target)),
        };
        let target_rel = normalise(raw_target)
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
    fn for_entry(self, name: &Path) -> ExtractError {
        match self {
            Self::Symlink | Self::Missing => ExtractError::PathEscape {
                entry: name.to_path_buf(),
            },
            Self::Other(e) => e,
        }
    }
}

#[cfg(test)]
mod tests;
