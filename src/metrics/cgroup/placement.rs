//! Where this process's cgroup is, per controller: its path in `/proc/self/cgroup` and its
//! directory. Most hosts mount each hierarchy where systemd, Docker and the kernel's
//! documentation do (`/sys/fs/cgroup`, v1's at `/sys/fs/cgroup/<controllers>`), so the
//! directory is looked for there first and taken when it proves to be this process's cgroup;
//! only otherwise (a container's mount of a sub-tree, an unusual mount point) is
//! `/proc/self/mountinfo` read, which costs more than all the rest (docs/BENCHMARKS.md).

use std::cell::OnceCell;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where procfs is, and the directory the mount points of mountinfo are relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    pub procfs: PathBuf,
    pub root: PathBuf,
}

impl Roots {
    pub fn system() -> Roots {
        Roots {
            procfs: PathBuf::from("/proc"),
            root: PathBuf::from("/"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// A mounted cgroup hierarchy, as mountinfo writes it (paths still escaped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mount<'a> {
    version: Version,
    /// v1: the super options, which name the controllers the hierarchy carries.
    options: &'a str,
    /// The cgroup path the mount shows at its mount point ("/" unless it is a sub-tree).
    root: &'a str,
    point: &'a str,
}

impl Mount<'_> {
    fn carries(&self, controller: &str) -> bool {
        self.options.split(',').any(|option| option == controller)
    }
}

/// The cgroup mounts of mountinfo: the text, and per mount its version and the byte ranges
/// of root, mount point and super options.
#[derive(Clone, Debug)]
struct Mounts {
    text: String,
    found: Vec<(Version, [Range<usize>; 3])>,
}

/// This process's memberships, read once per probe; the mounts only if a controller asked
/// about is not where it usually is.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The text of `/proc/self/cgroup`.
    cgroup: String,
    /// Its lines' controllers and path, as byte ranges, found in one pass.
    lines: Vec<Membership>,
    /// The line carrying each of [`KNOWN`], found in the same pass.
    known: [Option<usize>; KNOWN.len()],
    /// Where `/proc` is: mountinfo is read from it only when asked.
    procfs: PathBuf,
    mounts: OnceCell<Result<Mounts, String>>,
    root: PathBuf,
    /// This process's ID, asked of the kernel once (`std::process::id` is a syscall a call).
    pid: OnceCell<u32>,
}

/// One controller's cgroup: its path as `/proc/self/cgroup` names it and its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub version: Version,
    pub path: String,
    pub(super) dir: PathBuf,
    /// How many levels above `dir` are visible under the mount point.
    pub(super) depth: usize,
}

impl Group {
    /// The cgroup and its visible ancestors, nearest first: `(path, directory)`.
    /// By bytes: `dir` ends in the cgroup's path below the mount point, built without empty
    /// parts, so each level up cuts one part off both; `Path::parent` cost 300 instructions.
    pub(super) fn levels(&self) -> impl Iterator<Item = (&str, &Path)> {
        use std::os::unix::ffi::OsStrExt;
        let (mut path, mut dir) = (self.path.as_str(), self.dir.as_os_str().as_bytes());
        (0..=self.depth).map(move |_| {
            let level = (path, Path::new(std::ffi::OsStr::from_bytes(dir)));
            // By bytes: `rfind` called `memrchr`, 80 instructions a level over a short path.
            path = match path.bytes().rposition(|byte| byte == b'/') {
                Some(0) | None => path.get(..1).unwrap_or(path),
                Some(parent) => path.get(..parent).unwrap_or(path),
            };
            dir = match dir.iter().rposition(|byte| *byte == b'/') {
                Some(0) => dir.get(..1).unwrap_or(dir),
                Some(parent) => dir.get(..parent).unwrap_or(dir),
                None => dir,
            };
            level
        })
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        super::under(&self.dir, &[name])
    }

    /// The directory of `path`, the cgroup itself or one of its visible ancestors.
    pub(super) fn level_dir(&self, path: &str) -> Option<&Path> {
        // The cgroup itself, where a quota usually is: no walk, which finds each parent
        // before it yields a level.
        if path == self.path {
            return Some(&self.dir);
        }
        self.levels()
            .find(|(level, _)| *level == path)
            .map(|(_, dir)| dir)
    }
}

/// Reads `/proc/self/cgroup`.
pub fn locate(roots: Roots) -> Result<Placement, String> {
    // Concatenated, not joined: `Path::join` cost 600 instructions each.
    let cgroup = super::read(&super::under(&roots.procfs, &["self/cgroup"]))?;
    let (lines, known) = membership_lines(&cgroup);
    Ok(Placement {
        lines,
        known,
        cgroup,
        procfs: roots.procfs,
        mounts: OnceCell::new(),
        root: roots.root,
        pid: OnceCell::new(),
    })
}

/// A line of `/proc/self/cgroup`: the byte ranges of its controllers and its path.
type Membership = (Range<usize>, Range<usize>);

/// The proof of the v1 cpu hierarchy ([`v1_marker`]).
pub(super) const V1_CPU_MARKER: &str = "cpu.cfs_quota_us";

/// The v1 controllers the readers ask for, whose lines are found while the text is split.
const KNOWN: [&str; 4] = ["cpu", "cpuacct", "cpuset", "memory"];

/// The `ID:CONTROLLERS:PATH` lines of `/proc/self/cgroup`, as the byte ranges of controllers
/// and path, and the first line carrying each of [`KNOWN`], in one pass. Newlines, colons and
/// the commas between controllers are found 16 bytes at a time ([`super::matches`]) and
/// looked at in order: 1.7 k instructions over the ten lines of a v1 host, where a search
/// byte by byte and a split of the controllers took 2.4 k, `lines()` and `split_once` 5 k.
/// Not inlined into [`locate`]: there it cost 200 more.
#[inline(never)]
fn membership_lines(text: &str) -> (Vec<Membership>, [Option<usize>; KNOWN.len()]) {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(16);
    let mut known = [None; KNOWN.len()];
    // The line being read: its first two colons, where its controller being read begins,
    // and the bits of the [`KNOWN`] ones it has listed so far.
    let (mut colons, mut controller, mut listed) = ([None; 2], 0, 0u32);
    // The bit of a known controller's name; a match on the bytes compares lengths first.
    let bit = |name: &[u8]| match name {
        b"cpu" => 1,
        b"cpuacct" => 2,
        b"cpuset" => 4,
        b"memory" => 8,
        _ => 0,
    };
    let (newline, colon, comma) = (
        super::needle(b'\n'),
        super::needle(b':'),
        super::needle(b','),
    );
    let mut tail = [0; super::BLOCK];
    // One more round past the end ends the last line, newline or not.
    for at in (0..bytes.len() + 1).step_by(super::BLOCK) {
        let window = super::block(bytes, at, &mut tail);
        let mut ends = super::matches(window, 0, &newline);
        if bytes.len() - at < super::BLOCK {
            ends |= 1 << (bytes.len() - at);
        }
        let colons_here = super::matches(window, 0, &colon);
        let mut marks = ends | colons_here | super::matches(window, 0, &comma);
        while marks != 0 {
            let mark = marks.trailing_zeros();
            let at = at + mark as usize;
            marks &= marks - 1;
            match colons {
                _ if ends >> mark & 1 == 1 => {
                    if let [Some(first), Some(second)] = colons {
                        while listed != 0 {
                            let index = listed.trailing_zeros() as usize;
                            if let Some(slot) = known.get_mut(index) {
                                slot.get_or_insert(lines.len());
                            }
                            listed &= listed - 1;
                        }
                        lines.push((first + 1..second, second + 1..at));
                    }
                    (colons, listed) = ([None; 2], 0);
                }
                // A comma or a colon after the path's start is the path's.
                [_, Some(_)] => {}
                [None, None] if colons_here >> mark & 1 == 1 => {
                    colons[0] = Some(at);
                    controller = at + 1;
                }
                [None, None] => {}
                [Some(_), None] => {
                    listed |= bit(bytes.get(controller..at).unwrap_or_default());
                    controller = at + 1;
                    if colons_here >> mark & 1 == 1 {
                        colons[1] = Some(at);
                    }
                }
            }
        }
    }
    (lines, known)
}

/// Whether a comma-separated `list` has `item`.
fn lists(list: &str, item: &str) -> bool {
    list.as_bytes()
        .split(|byte| *byte == b',')
        .any(|part| part == item.as_bytes())
}

/// The cgroup mounts of mountinfo: `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE
/// SOURCE SUPER_OPTIONS`. A host with containers has hundreds of mounts: the text is
/// searched for the cgroup types, and only those lines are split (paths have their spaces
/// escaped, so fields split on single spaces).
fn cgroup_mounts(text: &str) -> Vec<(Version, [Range<usize>; 3])> {
    let range = |field: &str| {
        let start = field.as_ptr() as usize - text.as_ptr() as usize;
        start..start + field.len()
    };
    text.match_indices(" - cgroup")
        .filter_map(|(at, _)| {
            let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
            let end = text[at..]
                .find('\n')
                .map_or(text.len(), |newline| at + newline);
            let mut head = text[start..at].split(' ');
            let (root, point) = (head.nth(3)?, head.next()?);
            let mut tail = text[at + 3..end].split(' ');
            let version = match tail.next()? {
                "cgroup" => Version::V1,
                "cgroup2" => Version::V2,
                _ => return None,
            };
            let options = tail.nth(1).unwrap_or("");
            Some((version, [range(root), range(point), range(options)]))
        })
        .collect()
}

/// A file only `controller`'s v1 hierarchy has at each level: the proof that a directory
/// belongs to it.
fn v1_marker(controller: &str) -> Option<&'static str> {
    match controller {
        // The file the quota walk reads at the top anyway, which [`super::cpu`] reads as the
        // proof; a kernel without CFS bandwidth control lacks it, and is looked up in mountinfo.
        "cpu" => Some(V1_CPU_MARKER),
        "cpuacct" => Some("cpuacct.usage"),
        "cpuset" => Some("cpuset.cpus"),
        "memory" => Some("memory.usage_in_bytes"),
        _ => None,
    }
}

impl Placement {
    /// A system path under the root the placement was read from (so a probe clones no
    /// [`Roots`] for it).
    pub(super) fn under_root(&self, absolute: &str) -> super::Joined {
        super::file::in_root(&self.root, absolute)
    }

    /// This process's ID, which `cgroup.procs` lists and its affinity is asked by.
    pub fn pid(&self) -> u32 {
        *self.pid.get_or_init(std::process::id)
    }

    /// `(controllers, path)` per line of `/proc/self/cgroup`; v2's line has no controllers.
    fn memberships(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().map(|line| self.text_of(line))
    }

    /// Line `index`'s [`Placement::memberships`] item, without the items before it (`nth`
    /// made each of them).
    fn membership(&self, index: usize) -> Option<(&str, &str)> {
        self.lines.get(index).map(|line| self.text_of(line))
    }

    fn text_of(&self, (controllers, path): &Membership) -> (&str, &str) {
        let text = |range: &Range<usize>| self.cgroup.get(range.clone()).unwrap_or("");
        (text(controllers), text(path))
    }

    fn mounts(&self) -> Result<impl Iterator<Item = Mount<'_>>, String> {
        let mounts = self
            .mounts
            .get_or_init(|| {
                let text = super::read(&super::under(&self.procfs, &["self/mountinfo"]))?;
                Ok(Mounts {
                    found: cgroup_mounts(&text),
                    text,
                })
            })
            .as_ref()
            .map_err(Clone::clone)?;
        let text = |range: &Range<usize>| mounts.text.get(range.clone()).unwrap_or("");
        Ok(mounts
            .found
            .iter()
            .map(move |(version, [root, point, options])| Mount {
                version: *version,
                root: text(root),
                point: text(point),
                options: text(options),
            }))
    }

    /// The cgroup of `controller`: its v1 hierarchy if one carries it, else the v2 one when
    /// the controller is enabled there (a hybrid system mounts v2 with no controllers).
    pub fn group(&self, controller: &str) -> Result<Group, String> {
        let marker = v1_marker(controller);
        let proved = |top: &Path| {
            marker
                .is_some_and(|marker| super::in_dir(top, marker).exists())
                .then_some(())
        };
        self.group_proved(controller, proved)
            .map(|(group, _)| group)
    }

    /// [`Placement::group`], where `prove` reads the proof that the directory at v1's usual
    /// mount point is of the controller's hierarchy (`None`: it is not): what it read comes
    /// back when that directory is the group's, so the same file is not opened twice. Else
    /// (v2, or the group found through mountinfo) nothing comes back.
    pub fn group_proved<T>(
        &self,
        controller: &str,
        prove: impl FnOnce(&Path) -> Option<T>,
    ) -> Result<(Group, Option<T>), String> {
        let v1 = match KNOWN.iter().position(|known| *known == controller) {
            Some(index) => self
                .known
                .get(index)
                .copied()
                .flatten()
                .and_then(|line| self.membership(line)),
            None => self
                .memberships()
                .find(|(controllers, _)| lists(controllers, controller)),
        };
        if let Some((controllers, path)) = v1 {
            let usual = ["sys/fs/cgroup", controllers];
            if let Some((group, proof)) = self.usual(Version::V1, usual, path, prove) {
                return Ok((group, Some(proof)));
            }
            let mount = self
                .mounts()?
                .filter(|m| m.version == Version::V1 && m.carries(controller))
                .max_by_key(|m| usize::from(is_within(path, &unescape(m.root))))
                .ok_or_else(|| format!("no cgroup v1 mount carries the {controller} controller"))?;
            return Ok((place(&self.root, Version::V1, path, mount), None));
        }
        if !self
            .memberships()
            .any(|(controllers, _)| controllers.is_empty())
        {
            return Err(format!("no {controller} controller in /proc/self/cgroup"));
        }
        let (group, top) = self.unified()?;
        // The mount's root lists the controllers it has (a hybrid system's v2 has none or
        // few); below it a controller may be enabled or not, which the readers see as files
        // present or absent at each level.
        let listed = super::in_dir(&top, "cgroup.controllers");
        let enabled = super::read_small(&listed, |text| {
            Ok(text.split_ascii_whitespace().any(|c| c == controller))
        })?;
        if !enabled {
            return Err(format!(
                "the {controller} controller is not enabled ({})",
                listed.display()
            ));
        }
        Ok((group, None))
    }

    /// The process's cgroup in the v2 (unified) hierarchy, whatever controllers it has, and
    /// that hierarchy's mount point: where its pressure files are, also on a hybrid system.
    pub fn unified(&self) -> Result<(Group, PathBuf), String> {
        let path = self
            .memberships()
            .find(|(controllers, _)| controllers.is_empty())
            .map(|(_, path)| path)
            .ok_or_else(|| "no cgroup v2 membership in /proc/self/cgroup".to_string())?;
        let usual = ["sys/fs/cgroup", ""];
        let group = match self.usual(Version::V2, usual, path, |top| {
            super::in_dir(top, "cgroup.controllers")
                .is_file()
                .then_some(())
        }) {
            Some((group, ())) => (group, super::under(&self.root, &usual)),
            None => {
                let mount = self
                    .mounts()?
                    .filter(|m| m.version == Version::V2)
                    .max_by_key(|m| usize::from(is_within(path, &unescape(m.root))))
                    .ok_or_else(|| "no cgroup2 mount in /proc/self/mountinfo".to_string())?;
                let top = super::under(&self.root, &[&unescape(mount.point)]);
                (place(&self.root, Version::V2, path, mount), top)
            }
        };
        Ok(group)
    }

    /// The group at the usual mount point (`usual` under the root), with what `is_hierarchy`
    /// read to prove the directory there is of the hierarchy asked about, when it is and this
    /// process is where `/proc/self/cgroup` says in it: at its top (the cgroup `/`, which is
    /// the mount point whatever the mount's root) or listed in the `cgroup.procs` of `usual` +
    /// `path`, which a mount of a sub-tree or of another cgroup would not show (a process is
    /// in one cgroup per hierarchy).
    fn usual<T>(
        &self,
        version: Version,
        usual: [&str; 2],
        path: &str,
        is_hierarchy: impl FnOnce(&Path) -> Option<T>,
    ) -> Option<(Group, T)> {
        if !path.starts_with('/') {
            return None;
        }
        let depth = parts(path)?;
        // The kernel writes one slash first: only the end is trimmed then (`trim_matches`
        // cost 55 instructions a group).
        let below = match path.as_bytes().get(1) {
            Some(b'/') => path.trim_matches('/'),
            _ => path.get(1..).unwrap_or_default().trim_end_matches('/'),
        };
        // Built once: the mount point is the directory's beginning.
        let dir = joined(&self.root, [usual[0], usual[1], below]);
        let top = {
            use std::os::unix::ffi::OsStrExt;
            let bytes = dir.as_os_str().as_bytes();
            let cut = if below.is_empty() { 0 } else { below.len() + 1 };
            Path::new(std::ffi::OsStr::from_bytes(
                bytes.get(..bytes.len() - cut).unwrap_or(bytes),
            ))
        };
        let proof = is_hierarchy(top)?;
        if depth > 0 && !lists_this_process(&super::in_dir(&dir, "cgroup.procs"), self.pid()) {
            return None;
        }
        let group = Group {
            version,
            path: path.to_string(),
            depth,
            dir,
        };
        Some((group, proof))
    }
}

/// Whether a `cgroup.procs` file lists this process, `pid` (one PID a line, in its PID
/// namespace).
fn lists_this_process(path: &super::Joined, pid: u32) -> bool {
    use std::io::Read;
    let Ok(mut file) = path.open() else {
        return false;
    };
    // A service's cgroup lists a few PIDs; a longer list takes more reads, on the descriptor
    // only, where a larger buffer cost every probe the clearing of it.
    let mut buffer = [0; 128];
    // Bytes of a line not yet ended, kept at the front for the next read.
    let mut kept = 0;
    loop {
        let read = match file.read(buffer.get_mut(kept..).unwrap_or_default()) {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        let filled = buffer.get(..kept + read).unwrap_or_default();
        let mut start = 0;
        for (at, byte) in filled.iter().enumerate() {
            if *byte == b'\n' {
                if is_number(filled.get(start..at).unwrap_or_default(), pid) {
                    return true;
                }
                start = at + 1;
            }
        }
        kept = filled.len() - start;
        // A line as long as the buffer is no PID.
        if kept == buffer.len() {
            return false;
        }
        buffer.copy_within(start..start + kept, 0);
    }
}

/// Whether `digits` are `number` in decimal, without formatting it.
pub(super) fn is_number(digits: &[u8], number: u32) -> bool {
    let mut value: u64 = 0;
    for digit in digits {
        if !digit.is_ascii_digit() || value > u64::from(u32::MAX) {
            return false;
        }
        value = value * 10 + u64::from(digit - b'0');
    }
    !digits.is_empty() && value == u64::from(number)
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
pub(super) fn unescape(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.contains('\\') {
        return std::borrow::Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| byte == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(decoded) => {
                out.push(decoded);
                i += 4;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// How many parts cgroup `path` has (`/a/b`: 2), `None` when it has a `/..` (a process
/// outside its namespace's sub-tree): in one pass over the parts between slashes, where a
/// loop over the bytes cost 240 instructions over a service's path, and a search for `/..`
/// and a `split` of the text 500.
fn parts(path: &str) -> Option<usize> {
    let mut between = path.as_bytes().split(|byte| *byte == b'/');
    // Before the first slash: no `/..`.
    let mut parts = usize::from(between.next().is_some_and(|part| !part.is_empty()));
    for part in between {
        if part.starts_with(b"..") {
            return None;
        }
        parts += usize::from(!part.is_empty());
    }
    Some(parts)
}

/// [`super::under`] of parts that have no slash at either end: concatenated, without its
/// trimming, which cost 200 instructions a group.
fn joined(root: &Path, parts: [&str; 3]) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let base = root.as_os_str().as_bytes();
    let base = base.strip_suffix(b"/").unwrap_or(base);
    let mut bytes =
        Vec::with_capacity(base.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    bytes.extend_from_slice(base);
    for part in parts.iter().filter(|part| !part.is_empty()) {
        bytes.push(b'/');
        bytes.extend_from_slice(part.as_bytes());
    }
    if bytes.is_empty() {
        bytes.push(b'/');
    }
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

fn is_within(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The directory of cgroup `path` under `mount`. Outside the mount's root (a process moved
/// out of a namespace's sub-tree, shown as `/..`), the mount point is the nearest it gets.
fn place(root: &Path, version: Version, path: &str, mount: Mount<'_>) -> Group {
    let (mount_root, point) = (unescape(mount.root), unescape(mount.point));
    let below = match is_within(path, &mount_root) && parts(path).is_some() {
        true => {
            &path[if mount_root == "/" {
                0
            } else {
                mount_root.len()
            }..]
        }
        false => "",
    };
    let below = below.trim_matches('/');
    // A part of a path that does not climb does not either.
    let depth = parts(below).unwrap_or(0);
    Group {
        version,
        path: path.to_string(),
        dir: super::under(root, &[&point, below]),
        depth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_finds_each_known_controllers_first_line() {
        let text = "12:name=systemd:/a:b\n4:memory:/m\n2:cpu,cpuacct:/c\n1:cpuset:/\n9:memory:/later\n0::/v2";
        let (lines, known) = membership_lines(text);
        let line = |n: Option<usize>| {
            let (controllers, path) = lines.get(n?)?.clone();
            Some((text.get(controllers)?, text.get(path)?))
        };
        let found: Vec<_> = known.iter().map(|n| line(*n)).collect();
        let expected = [
            ("cpu,cpuacct", "/c"),
            ("cpu,cpuacct", "/c"),
            ("cpuset", "/"),
            ("memory", "/m"),
        ];
        assert_eq!(found, expected.map(Some));
        assert_eq!(KNOWN, ["cpu", "cpuacct", "cpuset", "memory"]);
        assert_eq!(line(Some(0)), Some(("name=systemd", "/a:b")));
        assert_eq!(line(Some(lines.len() - 1)), Some(("", "/v2")));
        // A line without two colons is no membership.
        assert_eq!(membership_lines("1:cpu\n\n").0, Vec::new());
        assert_eq!(membership_lines("1:cpu,memory").1, [None; KNOWN.len()]);
        let both = membership_lines("1:cpu,memory:/,x:y");
        assert_eq!(both.1, [Some(0), None, None, Some(0)]);
        // Texts of lines a seeded generator makes of known and other names, commas, colons
        // and newlines, every length across the 16-byte blocks, against a plain reading.
        let plain = |text: &str| {
            let mut lines = Vec::new();
            let mut known = [None; KNOWN.len()];
            for line in text.split('\n') {
                let mut fields = line.splitn(3, ':');
                let (Some(_), Some(controllers), Some(path)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                for name in controllers.split(',') {
                    if let Some(index) = KNOWN.iter().position(|known| *known == name) {
                        known[index].get_or_insert(lines.len());
                    }
                }
                lines.push((controllers.to_string(), path.to_string()));
            }
            (lines, known)
        };
        let pieces = [
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "pids",
            "cpux",
            "",
            ":",
            ",",
            "\n",
            "/a",
            "1",
            "0::/",
            "4:memory:/m\n",
        ];
        let mut seed: u64 = 7;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..seed % 23 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            let (lines, known) = membership_lines(&text);
            let found: Vec<_> = lines
                .iter()
                .map(|(controllers, path)| {
                    (
                        text[controllers.clone()].to_string(),
                        text[path.clone()].to_string(),
                    )
                })
                .collect();
            assert_eq!((found, known), plain(&text), "{text:?}");
        }
    }

    #[test]
    fn a_pid_is_found_across_reads_and_only_whole() {
        let dir = std::env::temp_dir().join(format!("lbf-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cgroup.procs");
        // Thousands of lines: many reads of the buffer, lines cut between them.
        let list: String = (1..3000).map(|pid| format!("{}\n", pid * 7)).collect();
        std::fs::write(&file, &list).unwrap();
        let path = super::super::Joined::new(&file);
        assert!(lists_this_process(&path, 7));
        assert!(lists_this_process(&path, 2999 * 7));
        for pid in (1000..1200).map(|n| n * 7) {
            assert!(lists_this_process(&path, pid), "{pid}");
        }
        // A prefix or a suffix of a listed PID is not listed.
        assert!(!lists_this_process(&path, 2));
        assert!(!lists_this_process(&path, 209));
        assert!(!lists_this_process(&path, 20993 + 1));
        // A line longer than the buffer is no PID; an unreadable file lists nobody.
        std::fs::write(&file, format!("{}\n7\n", "1".repeat(500))).unwrap();
        assert!(!lists_this_process(&path, 7));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!lists_this_process(&path, 7));
    }

    #[test]
    fn joined_is_under_for_parts_without_end_slashes() {
        for root in ["/", "", "/r", "/r/"] {
            for parts in [
                ["sys/fs/cgroup", "memory", "a/b"],
                ["sys/fs/cgroup", "", "x"],
                ["sys/fs/cgroup", "cpu,cpuacct", ""],
                ["", "", ""],
            ] {
                let root = Path::new(root);
                assert_eq!(joined(root, parts), super::super::under(root, &parts));
            }
        }
    }

    #[test]
    fn parts_are_counted_unless_the_path_climbs() {
        let paths = [
            "/", "", "/a", "/a/b/", "a//b", "/a/../b", "/..", "/..x", "/a/..", "/x..",
        ];
        let parts_of = paths.map(parts);
        let expected = [
            Some(0),
            Some(0),
            Some(1),
            Some(2),
            Some(2),
            None,
            None,
            None,
            None,
            Some(1),
        ];
        assert_eq!(parts_of, expected);
    }
}
