//! Unit tests of `state::files`: user and group lookups and the hostile-directory file operations.

use super::*;

#[test]
fn group_members_are_found_by_gid_and_name() {
    let group = "root:x:0:\nadm:x:4:syslog,alice\nstaff:x:50:bob\n";
    assert!(in_group(group, "alice", 4));
    assert!(!in_group(group, "alice", 50));
    assert!(!in_group(group, "ali", 4));
    assert!(!in_group(group, "root", 0));
}

#[test]
fn unusable_says_why_and_creates_nothing() {
    let (path, _dir) = temp_dir("unusable");
    assert_eq!(unusable(&path, None), None);
    let file = path.join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(
        unusable(&file, None)
            .unwrap()
            .to_string()
            .contains("Not a directory")
    );
    let missing = path.join("a").join("b");
    assert_eq!(unusable(&missing, None), None);
    assert!(!path.join("a").exists());
    let strange = unusable(&path, Some("no-such-user-here"))
        .unwrap()
        .to_string();
    assert!(
        strange.contains("no user no-such-user-here in /etc/passwd"),
        "{strange}"
    );
}
use std::os::unix::fs::{PermissionsExt, symlink};

fn temp_dir(name: &str) -> (PathBuf, Dir) {
    let path = std::env::temp_dir().join(format!("lbf-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    let dir = Dir::create(&path, None).unwrap();
    (path, dir)
}

#[test]
fn replace_read_remove_round_trip_leaves_no_temp_files() {
    let (path, dir) = temp_dir("round");
    assert_eq!(dir.read("a").unwrap(), None);
    dir.replace("a", b"one", true).unwrap();
    dir.replace("a", b"two", false).unwrap();
    assert_eq!(dir.read("a").unwrap().unwrap(), b"two");
    let mode = std::fs::metadata(path.join("a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o022, 0, "group/other must not write: {mode:o}");
    dir.remove("a").unwrap();
    dir.remove("a").unwrap();
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
    std::fs::remove_dir_all(&path).unwrap();
}

#[test]
fn links_fifos_big_and_linked_files_are_refused_without_showing_content() {
    let (path, dir) = temp_dir("hostile");
    let secret = path.join("secret");
    std::fs::write(&secret, "TOP-SECRET").unwrap();
    symlink(&secret, path.join("link")).unwrap();
    let err = dir.read("link").unwrap_err();
    assert!(err.problem.to_string().contains("symbolic link"), "{err}");
    assert!(!err.to_string().contains("TOP-SECRET"), "{err}");
    let err = dir.overwrite("link", b"x").unwrap_err();
    assert!(err.problem.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&secret).unwrap(), b"TOP-SECRET");

    let fifo = std::ffi::CString::new(path.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let err = dir.read("fifo").unwrap_err();
    assert!(err.problem.to_string().contains("FIFO"), "{err}");
    assert!(dir.overwrite("fifo", b"x").is_err());

    std::fs::write(path.join("big"), vec![b'x'; MAX_READ as usize + 1]).unwrap();
    assert!(
        dir.read("big")
            .unwrap_err()
            .problem
            .to_string()
            .contains("more than")
    );

    std::fs::hard_link(&secret, path.join("hard")).unwrap();
    assert!(
        dir.read("hard")
            .unwrap_err()
            .problem
            .to_string()
            .contains("hard links")
    );

    assert!(dir.read("../secret").is_err());
    std::fs::remove_dir_all(&path).unwrap();
}

#[test]
fn a_symlinked_directory_is_refused() {
    let (path, _dir) = temp_dir("dirlink");
    let link = path.with_extension("link");
    let _ = std::fs::remove_file(&link);
    symlink(&path, &link).unwrap();
    let err = Dir::open(&link)
        .err()
        .expect("a linked directory must be refused");
    assert!(err.problem.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}

#[test]
fn overwrite_in_place_cuts_off_the_old_tail() {
    let (path, dir) = temp_dir("overwrite");
    std::fs::write(path.join("c"), "x".repeat(200)).unwrap();
    dir.overwrite("c", b"short\n").unwrap();
    assert_eq!(dir.read("c").unwrap().unwrap(), b"short\n");
    std::fs::remove_dir_all(&path).unwrap();
}

#[test]
fn passwd_lines_give_the_ids_of_the_exact_name() {
    let passwd = "root:x:0:0:root:/root:/bin/bash\nlb-feedback-old:x:7:7::/:/x\n\
                      lb-feedback:x:104:110::/nonexistent:/usr/sbin/nologin\nbroken:x:y:1\n";
    assert_eq!(passwd_ids(passwd, "lb-feedback"), Some((104, 110)));
    assert_eq!(passwd_ids(passwd, "root"), Some((0, 0)));
    assert_eq!(passwd_ids(passwd, "lb"), None);
    assert_eq!(passwd_ids(passwd, "broken"), None);
}

#[test]
fn preview_escapes_and_cuts() {
    assert_eq!(preview(b"ab\n\x00", 16), "\"ab\\n\\x00\"");
    assert_eq!(preview(b"abcdef", 3), "\"abc\"…");
}

#[test]
fn a_directory_replaced_at_its_path_is_opened_afresh() {
    let (path, _dir) = temp_dir("replaced");
    let first = Dir::open(&path).unwrap().unwrap();
    first.replace("a", b"old", false).unwrap();
    // Opened again while it is the same directory: the same one (kept open).
    let again = Dir::open(&path).unwrap().unwrap();
    assert_eq!(again.read("a").unwrap().unwrap(), b"old");
    let moved = path.with_extension("moved");
    let _ = std::fs::remove_dir_all(&moved);
    std::fs::rename(&path, &moved).unwrap();
    assert!(Dir::open(&path).unwrap().is_none());
    std::fs::create_dir(&path).unwrap();
    let fresh = Dir::open(&path).unwrap().unwrap();
    assert_eq!(fresh.read("a").unwrap(), None);
    // A link put where it was is refused, though the directory it names was open before.
    std::fs::remove_dir(&path).unwrap();
    symlink(&moved, &path).unwrap();
    let err = Dir::open(&path).err().expect("a link must be refused");
    assert!(err.problem.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_dir_all(&moved).unwrap();
}

#[test]
fn a_locked_write_leaves_exactly_what_it_wrote() {
    let (path, dir) = temp_dir("locked");
    let write = |bytes: &[u8], read_first: bool| {
        let locked = dir.lock("t", Duration::from_secs(1)).unwrap().unwrap();
        if read_first {
            locked.read(MAX_READ).unwrap();
        }
        locked.write(&[bytes, b"\n"]).unwrap();
        std::fs::read(path.join("t")).unwrap()
    };
    assert_eq!(
        write(&[b'x'; 200], true),
        [&[b'x'; 200][..], b"\n"].concat()
    );
    assert_eq!(
        write(b"longer than nothing", true),
        b"longer than nothing\n"
    );
    assert_eq!(write(b"short", true), b"short\n");
    std::fs::write(path.join("t"), [b'y'; 300]).unwrap();
    assert_eq!(write(b"unread", false), b"unread\n");
    // Read grown past its size at the lock: still whole, still bounded.
    let locked = dir.lock("t", Duration::from_secs(1)).unwrap().unwrap();
    std::fs::write(path.join("t"), [b'z'; 3000]).unwrap();
    assert_eq!(locked.read(MAX_READ).unwrap(), [b'z'; 3000]);
    assert!(
        locked
            .read(2999)
            .unwrap_err()
            .problem
            .to_string()
            .contains("more than")
    );
    drop(locked);
    std::fs::remove_dir_all(&path).unwrap();
}
