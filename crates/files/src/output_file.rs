//! Creating the files agentscope writes (graph JSON, captures, slices, baselines, console
//! exports), so that none of them can destroy an input or be turned against the user.
//!
//! Every output file follows the same rules, decided here once:
//!
//! - **Never an input.** An output that is the same file as an input (same device and inode,
//!   which also catches hard links and symbolic links to the input) is refused before anything
//!   is opened for writing: writing over a memory-mapped capture would destroy it and crash its
//!   reader.
//! - **Never through a link.** A symbolic link at the output path is refused, and files are
//!   opened with `O_NOFOLLOW` (or `O_EXCL`), so a link planted there by someone else cannot
//!   redirect the write.
//! - **Owner only.** Files are created mode 0600: they hold payloads and identities.
//! - **Whole or absent.** Files written in one go ([`AtomicFile`]) are written to a temporary
//!   file with a random name in the target's directory, created with `O_EXCL` (the `tempfile`
//!   crate), synced, and renamed over the target, so a reader never sees half a file and a
//!   crash leaves the old file intact. A command that must end on time (`collect`'s stop)
//!   syncs in a helper process and renames at its deadline even if the disk has not answered
//!   yet ([`AtomicFile::start_commit`]): a reader still never sees half a file, and only a
//!   machine failure in the next seconds could leave a short one (ext4, by default, writes the
//!   data of a file renamed over another before the rename).
//! - Files written continuously (recordings, [`create_streaming`]) cannot be renamed into
//!   place; they get the first three rules.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::disk_sync::DiskSync;

/// A file's identity on this machine: what "the same file" means, whatever the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// The inputs of a command, by identity (resolved once, following links, as they are read).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    files: Vec<(PathBuf, FileId)>,
}

impl Inputs {
    /// `paths` that exist; one that does not cannot be clobbered (and its reader reports it).
    pub fn new<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Self {
        let files = paths
            .into_iter()
            .filter_map(|p| {
                let p = p.as_ref();
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (p.to_path_buf(), FileId::of(&m)))
            })
            .collect();
        Self { files }
    }

    pub fn none() -> Self {
        Self::default()
    }

    fn check(&self, output: &Path, found: FileId) -> io::Result<()> {
        match self.files.iter().find(|(_, id)| *id == found) {
            Some((input, _)) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is the same file as the input {}: refusing to overwrite an input, \
                     choose another output",
                    output.display(),
                    input.display()
                ),
            )),
            None => Ok(()),
        }
    }
}

fn symlink_refused(output: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} is a symbolic link: refusing to write through or over it, give the real path",
            output.display()
        ),
    )
}

/// Checks what is at `output` now: nothing, or a file that is not a link and not an input.
fn check_target(output: &Path, inputs: &Inputs) -> io::Result<()> {
    match std::fs::symlink_metadata(output) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_refused(output)),
        Ok(meta) => inputs.check(output, FileId::of(&meta)),
    }
}

/// A file written in one go and renamed into place by [`AtomicFile::commit`]. Dropped without
/// a commit, the temporary file is removed and the target is untouched.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    inputs: Inputs,
}

impl AtomicFile {
    /// Creates the temporary file beside `target` (mode 0600, random name, `O_EXCL`).
    pub fn create(target: &Path, inputs: &Inputs) -> io::Result<Self> {
        check_target(target, inputs)?;
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let prefix = format!(
            ".{}.",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".into())
        );
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        Ok(Self {
            temp,
            target: target.to_path_buf(),
            inputs: inputs.clone(),
        })
    }

    /// Where the content goes until the commit: for writers that open the file themselves
    /// (a slice is written by the recorder).
    pub fn temporary_path(&self) -> &Path {
        self.temp.path()
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Syncs the data and renames it over the target, checking the target again (it may
    /// have changed while the file was written).
    pub fn commit(self) -> io::Result<()> {
        self.temp.as_file().sync_all()?;
        check_target(&self.target, &self.inputs)?;
        self.temp
            .persist(&self.target)
            .map(drop)
            .map_err(|err| err.error)
    }
}

impl AtomicFile {
    /// Starts the sync in a helper process ([`crate::disk_sync`]) and returns at once; the
    /// rename waits for [`PendingCommit::finish_by`]. Dropped, the temporary file is removed.
    pub fn start_commit(self) -> io::Result<PendingCommit> {
        let sync = match DiskSync::start(self.temp.as_file()) {
            Ok(mut sync) => {
                sync.request()?;
                Some(sync)
            }
            // No helper process: sync here.
            Err(_) => {
                self.temp.as_file().sync_all()?;
                None
            }
        };
        Ok(PendingCommit { file: self, sync })
    }
}

/// An [`AtomicFile`] written in full, its sync under way.
pub struct PendingCommit {
    file: AtomicFile,
    sync: Option<DiskSync>,
}

impl PendingCommit {
    /// Waits for the sync until `deadline` (`None`: as long as it takes), then renames the
    /// file over its target (checked again). `Ok(true)`: it was on disk before the rename;
    /// `Ok(false)`: the deadline came first, and the sync ends after the rename, on its own.
    /// A failed sync renames nothing.
    pub fn finish_by(mut self, deadline: Option<Instant>) -> io::Result<bool> {
        let on_disk = match &mut self.sync {
            Some(sync) => sync.wait_until(deadline)?,
            None => true,
        };
        let file = self.file;
        check_target(&file.target, &file.inputs)?;
        file.temp.persist(&file.target).map_err(|err| err.error)?;
        Ok(on_disk)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `target` as an [`AtomicFile`].
pub fn write_atomically(target: &Path, inputs: &Inputs, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(target, inputs)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Opens `path` for a file written continuously (a recording), emptying what was there: mode
/// 0600, `O_NOFOLLOW`, and refused if it is an input. The checks come before the file is
/// emptied, and are made again on the opened file (a rename between the two is caught).
pub fn create_streaming(path: &Path, inputs: &Inputs) -> io::Result<File> {
    check_target(path, inputs)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => symlink_refused(path),
            _ => err,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    inputs.check(path, FileId::of(&meta))?;
    // `mode` applies only to a new file: an existing one is narrowed here.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.set_len(0)?;
    Ok(file)
}

/// Creates `path` only if nothing is there (not even a link): mode 0600. For outputs that
/// pick a free name rather than replace one (the console's exports).
pub fn create_new(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_output_that_is_an_input_through_a_hard_link_or_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.cap");
        std::fs::write(&input, b"precious").unwrap();
        let hard = dir.path().join("hard.cap");
        std::fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("soft.cap");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        let inputs = Inputs::new([&input]);
        for output in [&input, &hard, &soft] {
            let err = write_atomically(output, &inputs, b"clobbered").unwrap_err();
            assert!(err.to_string().contains("refusing"), "{err}");
            let err = create_streaming(output, &inputs).unwrap_err();
            assert!(err.to_string().contains("refusing"), "{err}");
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"precious");
        // Nothing was left behind either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_symlink_planted_at_the_output_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let planted = dir.path().join("graph.json");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(write_atomically(&planted, &Inputs::none(), b"x").is_err());
        assert!(create_streaming(&planted, &Inputs::none()).is_err());
        assert!(create_new(&planted).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn outputs_are_created_0600_and_replace_the_target_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        std::fs::write(&out, b"old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut file = AtomicFile::create(&out, &Inputs::none()).unwrap();
        file.write_all(b"new").unwrap();
        // Until the commit the target is the old file.
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        file.commit().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert_eq!(mode(&out), 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let rec = dir.path().join("rec.cap");
        std::fs::write(&rec, b"old recording").unwrap();
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = create_streaming(&rec, &Inputs::none()).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(mode(&rec), 0o600);
        let new = dir.path().join("new.yaml");
        create_new(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        assert!(create_new(&new).is_err());
    }

    #[test]
    fn a_commit_started_renames_at_its_finish_whether_or_not_the_disk_answered() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("graph.json");
        std::fs::write(&out, b"old").unwrap();
        let mut file = AtomicFile::create(&out, &Inputs::none()).unwrap();
        file.write_all(b"new").unwrap();
        let pending = file.start_commit().unwrap();
        // Until the finish the target is the old file.
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert!(pending.finish_by(None).unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert_eq!(mode(&out), 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A deadline already past: renamed all the same, whole.
        let mut file = AtomicFile::create(&out, &Inputs::none()).unwrap();
        file.write_all(b"newer").unwrap();
        let pending = file.start_commit().unwrap();
        pending.finish_by(Some(Instant::now())).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"newer");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // Dropped unfinished: the target is untouched, the temporary file gone.
        let mut file = AtomicFile::create(&out, &Inputs::none()).unwrap();
        file.write_all(b"dropped").unwrap();
        drop(file.start_commit().unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"newer");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dropped_atomic_file_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let mut file = AtomicFile::create(&out, &Inputs::none()).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
