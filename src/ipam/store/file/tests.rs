use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::cni::env::CniArgs;
use crate::cni::{CniError, code};
use crate::ipam::{self, IpamConfig};

const LONG: Duration = Duration::from_secs(60);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn owner(cid: &str) -> Owner {
    Owner::new(cid, "eth0")
}

fn conf(data_dir: &Path, subnet: &str) -> IpamConfig {
    let c =
        json!({"name": "net", "ipam": {"dataDir": data_dir.to_str().unwrap(), "subnet": subnet}});
    IpamConfig::from_netconf(&c, &CniArgs::default()).unwrap()
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap()
}

fn mode(p: impl AsRef<Path>) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn add_ip(c: &IpamConfig, cid: &str) -> String {
    ipam::add(c, &owner(cid)).unwrap().ips[0]
        .address
        .ip()
        .to_string()
}

#[test]
fn layout_is_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let out = ipam::add(&c, &owner("cid")).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.0.0.2/24");
    let d = tmp.path().join("net");
    assert_eq!(fs::read(d.join("10.0.0.2")).unwrap(), b"cid\r\neth0");
    assert_eq!(read(d.join("last_reserved_ip.0")), "10.0.0.2");
    assert_eq!(read(d.join("owners/cid@eth0")), "10.0.0.2\n");
    assert!(d.join("owners/.complete").is_file());
    assert!(d.join("lock").is_file());
    assert_eq!(
        fs::read_dir(d.join(".tmp")).unwrap().count(),
        0,
        "no temp file left"
    );
    for f in ["10.0.0.2", "lock", "last_reserved_ip.0", "owners/cid@eth0"] {
        assert_eq!(mode(d.join(f)), 0o600, "{f}");
    }
    for dir in ["", "owners", ".tmp"] {
        assert_eq!(mode(d.join(dir)), 0o700, "{dir:?}");
    }
    let names: BTreeSet<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let want: BTreeSet<String> = ["10.0.0.2", "last_reserved_ip.0", "lock", "owners", ".tmp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want);

    // v6 records are named by Ipv6Addr's Display.
    let c6 = IpamConfig::from_netconf(
        &json!({"name": "net6", "ipam": {"dataDir": tmp.path().to_str().unwrap(),
                "ranges": [[{"subnet": "fd00:0:0:1::/64", "rangeStart": "fd00:0:0:1::a"}]]}}),
        &CniArgs::default(),
    )
    .unwrap();
    ipam::add(&c6, &owner("cid")).unwrap();
    assert_eq!(read(tmp.path().join("net6/fd00:0:0:1::a")), "cid\r\neth0");
}

/// A directory as the reference host-local leaves it: no owners/, no .tmp/,
/// a legacy ID-only record, CRLF records and a last_reserved hint.
fn reference_dir(d: &Path) {
    fs::create_dir_all(d).unwrap();
    fs::write(d.join("10.0.0.2"), "a\r\neth0").unwrap();
    fs::write(d.join("10.0.0.3"), "legacy").unwrap();
    fs::write(d.join("10.0.0.4"), "b\r\nnet1").unwrap();
    fs::write(d.join("last_reserved_ip.0"), "10.0.0.4").unwrap();
    fs::write(d.join("lock"), "").unwrap();
}

#[test]
fn takes_over_a_reference_host_local_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    reference_dir(&d);
    let c = conf(tmp.path(), "10.0.0.0/24");
    assert_eq!(
        add_ip(&c, "c"),
        "10.0.0.5",
        "continues after last_reserved_ip.0"
    );
    assert!(d.join("owners/.complete").exists());
    assert_eq!(read(d.join("owners/a@eth0")), "10.0.0.2\n");
    assert_eq!(read(d.join("owners/legacy@")), "10.0.0.3\n");
    // Existing owners are found through the index: idempotent ADD, DEL.
    assert_eq!(add_ip(&c, "a"), "10.0.0.2");
    let b = Owner::new("b", "net1");
    assert_eq!(
        ipam::add(&c, &b).unwrap().ips[0].address.ip(),
        ip("10.0.0.4")
    );
    ipam::check(&c, &owner("legacy"), &[ip("10.0.0.3")]).unwrap();
    ipam::del(&c.location(), &owner("legacy")).unwrap();
    assert!(
        !d.join("10.0.0.3").exists(),
        "legacy record released by container ID"
    );
    ipam::del(&c.location(), &b).unwrap();
    assert!(!d.join("10.0.0.4").exists());
    assert!(d.join("10.0.0.2").exists());
    let l = ipam::list(&c.location()).unwrap();
    let ips: Vec<String> = l.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(ips, ["10.0.0.2", "10.0.0.5"]);
}

#[test]
fn index_build_interrupted_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    reference_dir(&d);
    // A crash during the first build: owners/ exists, .complete does not.
    fs::create_dir(d.join("owners")).unwrap();
    fs::write(d.join("owners/a@eth0"), "10.0.0.9\n").unwrap();
    drop(FileStore::open(&d, LONG).unwrap());
    assert!(d.join("owners/.complete").exists());
    let mut s = FileStore::open(&d, LONG).unwrap();
    assert_eq!(s.owned_by(&owner("a")).unwrap(), [ip("10.0.0.2")]);
    assert_eq!(
        s.owned_by(&Owner::new("b", "net1")).unwrap(),
        [ip("10.0.0.4")]
    );
}

#[test]
fn crash_leftovers_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    add_ip(&c, "y"); // 10.0.0.2, creates the layout

    // A stray temp file (and directory) from a killed process.
    fs::write(d.join(".tmp/10.0.0.9"), "x\r\neth0").unwrap();
    fs::create_dir(d.join(".tmp/junk")).unwrap();
    // An index pointing to a missing record and to a record of someone else.
    fs::write(d.join("owners/x@eth0"), "10.0.0.9\n10.0.0.2\nnot-an-ip\n").unwrap();
    assert_eq!(
        add_ip(&c, "x"),
        "10.0.0.3",
        "x holds nothing valid: fresh address"
    );
    assert_eq!(
        fs::read_dir(d.join(".tmp")).unwrap().count(),
        0,
        "leftovers removed"
    );
    assert_eq!(
        read(d.join("10.0.0.2")),
        "y\r\neth0",
        "foreign record untouched"
    );
    ipam::del(&c.location(), &owner("x")).unwrap();
    assert!(
        d.join("10.0.0.2").exists(),
        "DEL never removes a record naming someone else"
    );
    assert!(!d.join("10.0.0.3").exists());
    assert!(!d.join("owners/x@eth0").exists());

    // A record without index entry (crash between link and a lost index
    // write, or a foreign writer): the owner's retry adopts it.
    fs::write(d.join("10.0.0.4"), "z\r\neth0").unwrap();
    assert_eq!(add_ip(&c, "z"), "10.0.0.4");
    assert_eq!(read(d.join("owners/z@eth0")), "10.0.0.4\n");
    // ... and GC finds unindexed records by scanning.
    fs::write(d.join("10.0.0.77"), "q\r\neth0").unwrap();
    let r = ipam::gc(&c.location(), Some(&[owner("y"), owner("z")])).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let released: Vec<String> = r.released.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(released, ["10.0.0.77"]);
    // An empty record (host-local PLUGINS#498) burns nothing for ever: GC frees it.
    fs::write(d.join("10.0.0.5"), "").unwrap();
    assert_eq!(
        add_ip(&c, "w"),
        "10.0.0.6",
        "an empty record is not handed out"
    );
    let r = ipam::gc(&c.location(), Some(&[owner("y"), owner("z"), owner("w")])).unwrap();
    assert_eq!(r.released.len(), 1);
    assert!(!d.join("10.0.0.5").exists());
}

/// The addresses `who` holds according to the records (a full scan).
fn held_by(c: &IpamConfig, who: &Owner) -> Vec<String> {
    ipam::list(&c.location())
        .unwrap()
        .into_iter()
        .filter(|a| a.owner == *who)
        .map(|a| a.ip.to_string())
        .collect()
}

/// Issue 8, finding 3: a record whose owner-index entry is gone (power loss:
/// the index is not fsynced; or someone removed the file) must still be
/// released by DEL, and a retried ADD must return it rather than take a
/// second address.
#[test]
fn lost_index_entry_del_frees_and_add_retry_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    assert_eq!(add_ip(&c, "a"), "10.0.0.2");
    assert_eq!(add_ip(&c, "b"), "10.0.0.3");
    fs::remove_file(d.join("owners/a@eth0")).unwrap();
    ipam::del(&c.location(), &owner("a")).unwrap();
    assert!(!d.join("10.0.0.2").exists(), "DEL did not free 10.0.0.2");
    assert_eq!(read(d.join("10.0.0.3")), "b\r\neth0");

    fs::remove_file(d.join("owners/b@eth0")).unwrap();
    assert_eq!(add_ip(&c, "b"), "10.0.0.3", "ADD retry took a new address");
    assert_eq!(held_by(&c, &owner("b")), ["10.0.0.3"]);
    assert_eq!(
        read(d.join("owners/b@eth0")),
        "10.0.0.3\n",
        "index repaired"
    );
    // The whole owners/ directory gone: rebuilt, nothing lost.
    fs::remove_dir_all(d.join("owners")).unwrap();
    assert_eq!(add_ip(&c, "b"), "10.0.0.3");
    assert_eq!(add_ip(&c, "c"), "10.0.0.4");
    ipam::del(&c.location(), &owner("b")).unwrap();
    assert!(held_by(&c, &owner("b")).is_empty());
}

/// A store written by a host-local-style writer (records created with
/// O_EXCL, last_reserved_ip rewritten) after mactrunk indexed it.
#[test]
fn records_written_by_a_foreign_writer_after_indexing_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    assert_eq!(add_ip(&c, "a"), "10.0.0.2");
    // What host-local's Reserve does: the record, then the hint (O_TRUNC).
    let foreign = |ip: &str, cid: &str| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.join(ip))
            .unwrap()
            .write_all(format!("{cid}\r\neth0").as_bytes())
            .unwrap();
        fs::write(d.join("last_reserved_ip.0"), ip).unwrap();
    };
    foreign("10.0.0.3", "h1");
    foreign("10.0.0.4", "h2");
    ipam::del(&c.location(), &owner("h1")).unwrap();
    assert!(
        !d.join("10.0.0.3").exists(),
        "DEL did not free h1's address"
    );
    // host-local's hint points past h2's address: a retry must not take .5.
    assert_eq!(add_ip(&c, "h2"), "10.0.0.4");
    assert_eq!(held_by(&c, &owner("h2")), ["10.0.0.4"]);
    assert_eq!(add_ip(&c, "n"), "10.0.0.5");
}

/// Opening a store with a valid stamp, and ADD / DEL / repeated DEL on it,
/// never scan the directory, even with 1,000 allocations in it.
#[test]
fn the_normal_path_does_not_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/16");
    let d = tmp.path().join("net");
    let s = FileStore::open(&d, LONG).unwrap();
    assert_eq!(s.full_scans(), 1, "a new store is indexed once (empty)");
    drop(s);
    for i in 0..1000 {
        add_ip(&c, &format!("fill{i}"));
    }
    let session = |f: &dyn Fn(&mut FileStore)| {
        let mut s = FileStore::open(&d, LONG).unwrap();
        f(&mut s);
        s.commit().unwrap();
        assert_eq!(s.full_scans(), 0, "a scan on the normal path");
    };
    // ADD of a new container (no index entry, by definition)
    session(&|s| {
        let got = ipam::allocate(s, &c, &owner("new"), None).unwrap();
        assert_eq!(got[0].ip, ip("10.0.3.234"));
    });
    // ADD again (idempotent), CHECK's lookup
    session(&|s| {
        assert_eq!(
            ipam::allocate(s, &c, &owner("new"), None).unwrap()[0].ip,
            ip("10.0.3.234")
        );
        assert_eq!(s.owned_by(&owner("fill7")).unwrap(), [ip("10.0.0.9")]);
    });
    // DEL, then DEL again, and DEL of an owner that never existed
    session(&|s| assert_eq!(s.release(&owner("new")).unwrap(), [ip("10.0.3.234")]));
    session(&|s| assert!(s.release(&owner("new")).unwrap().is_empty()));
    session(&|s| assert!(s.release(&owner("never")).unwrap().is_empty()));
    // through the ipam entry points too (they open their own handle)
    assert_eq!(add_ip(&c, "x"), "10.0.3.235");
    ipam::del(&c.location(), &owner("x")).unwrap();
    session(&|_| {});
}

/// Each way the index can stop matching the records makes the next open
/// scan once, repair, and re-stamp; the open after that trusts it again.
#[test]
fn stamp_mismatches_trigger_one_repair() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    add_ip(&c, "a");
    add_ip(&c, "b");
    let stamp = d.join("owners/.complete");
    let scans = || FileStore::open(&d, LONG).unwrap().full_scans();
    assert_eq!(scans(), 0);
    // No pause between a stamp and the next change: settle_mtime makes a
    // change within the same clock tick show too (kernels before 6.13).
    let expect_one_repair = |what: &str| {
        assert_eq!(scans(), 1, "{what}: no repair");
        assert_eq!(scans(), 0, "{what}: repaired but not re-stamped");
        assert_eq!(held_by(&c, &owner("a")), ["10.0.0.2"], "{what}");
    };

    // A reboot (power loss): another boot id. Written in place, as a power
    // loss would leave it, so no directory time changes.
    let text = read(&stamp);
    let booted: String = text
        .lines()
        .map(|l| {
            if l.starts_with("boot ") {
                "boot 00000000-0000-0000-0000-000000000000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(booted, text);
    fs::write(&stamp, booted).unwrap();
    expect_one_repair("another boot id");

    // A torn or empty stamp (power loss), an older mactrunk's empty marker.
    fs::write(&stamp, "").unwrap();
    expect_one_repair("empty stamp");
    fs::write(&stamp, &read(&stamp)[..20]).unwrap();
    expect_one_repair("torn stamp");

    // A foreign writer rewrote the hint in place (the directories' times
    // may not show it within one clock tick).
    fs::write(d.join("last_reserved_ip.0"), "10.0.0.77").unwrap();
    expect_one_repair("hint rewritten");

    // A record created, its directory's mtime then set back: ctime shows it.
    // (ctime is what shows a restored mtime: let the clock tick once.)
    std::thread::sleep(Duration::from_millis(25));
    let before = fs::metadata(&d).unwrap();
    fs::write(d.join("10.0.0.50"), "f\r\neth0").unwrap();
    let ts = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &d,
        &ts(before.atime(), before.atime_nsec()),
        &ts(before.mtime(), before.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    assert_eq!(fs::metadata(&d).unwrap().mtime_nsec(), before.mtime_nsec());
    expect_one_repair("record created, mtime restored");
    assert_eq!(read(d.join("owners/f@eth0")), "10.0.0.50\n");

    // An index file removed; a record removed by hand.
    fs::remove_file(d.join("owners/b@eth0")).unwrap();
    expect_one_repair("index file removed");
    assert_eq!(read(d.join("owners/b@eth0")), "10.0.0.3\n");
    fs::remove_file(d.join("10.0.0.50")).unwrap();
    expect_one_repair("record removed");
    assert!(!d.join("owners/f@eth0").exists(), "stale index entry kept");

    // Killed between a change and the stamp (the stamp is written last).
    let mut s = FileStore::open(&d, LONG).unwrap();
    assert!(s.reserve(&owner("k"), ip("10.0.0.60")).unwrap());
    s.stamp_stale = false; // what a kill -9 before the drop leaves
    drop(s);
    expect_one_repair("killed before the stamp");
    assert_eq!(held_by(&c, &owner("k")), ["10.0.0.60"]);
}

/// A foreign record created right after a stamp, within the same clock tick
/// (kernels before 6.13 give both the same coarse time), must still show:
/// settle_mtime moved the stamped mtime below the tick. 50 rounds, no pause.
#[test]
fn a_foreign_change_right_after_the_stamp_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    add_ip(&c, "a");
    for i in 0..50 {
        // no hint touched: only the directory times can show it
        fs::write(
            d.join(format!("10.0.0.{}", 100 + i)),
            format!("f{i}\r\neth0"),
        )
        .unwrap();
        let s = FileStore::open(&d, LONG).unwrap();
        assert_eq!(s.full_scans(), 1, "round {i}: a foreign record went unseen");
        drop(s);
        assert_eq!(
            read(d.join(format!("owners/f{i}@eth0"))),
            format!("10.0.0.{}\n", 100 + i)
        );
        // and an index file removed right after a stamp
        fs::remove_file(d.join(format!("owners/f{i}@eth0"))).unwrap();
        assert_eq!(
            FileStore::open(&d, LONG).unwrap().full_scans(),
            1,
            "round {i}: a removed index file went unseen"
        );
    }
}

/// The stamp is rewritten in place: a hard link planted as owners/.complete
/// must not get its target overwritten.
#[test]
fn hard_link_planted_as_the_stamp_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    add_ip(&c, "a");
    fs::remove_file(d.join("owners/.complete")).unwrap();
    fs::hard_link(&victim, d.join("owners/.complete")).unwrap();
    add_ip(&c, "b");
    assert_eq!(read(&victim), "precious");
    assert!(read(d.join("owners/.complete")).starts_with("mactrunk owner-index stamp"));
    assert_eq!(FileStore::open(&d, LONG).unwrap().full_scans(), 0);
}

/// StoreReader creates and writes nothing, takes a shared lock only on an
/// existing lock file, and excludes writers while it lives.
#[test]
fn store_reader_is_read_only_and_shares_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    assert!(StoreReader::open(&d, LONG).is_err());
    assert!(!d.exists(), "the reader created the store");
    add_ip(&c, "a");
    // A stale stamp stays stale: readers neither repair nor stamp.
    fs::write(d.join("owners/.complete"), "").unwrap();
    let r1 = StoreReader::open(&d, LONG).unwrap();
    let r2 = StoreReader::open(&d, LONG).unwrap();
    assert_eq!(r1.all().unwrap().len(), 1);
    assert_eq!(r2.scan().unwrap().0[0].owner, owner("a"));
    let e = FileStore::open(&d, Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, StoreError::LockTimeout { .. }), "{e}");
    drop((r1, r2));
    assert_eq!(read(d.join("owners/.complete")), "");
    let w = FileStore::open(&d, LONG).unwrap();
    assert_eq!(w.full_scans(), 1, "a reader repaired the index");
    let e = StoreReader::open(&d, Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, StoreError::LockTimeout { .. }), "{e}");
    drop(w);
    // No lock file (not a store, or never locked): read as it is, no lock created.
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("10.0.0.9"), "p\r\neth0").unwrap();
    assert_eq!(
        StoreReader::open(&plain, LONG)
            .unwrap()
            .all()
            .unwrap()
            .len(),
        1
    );
    let names: Vec<_> = fs::read_dir(&plain)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["10.0.0.9"]);
    // A symlinked lock is refused, not followed.
    let victim = tmp.path().join("victim");
    fs::write(&victim, "").unwrap();
    symlink(&victim, plain.join("lock")).unwrap();
    assert!(matches!(
        StoreReader::open(&plain, LONG).unwrap_err(),
        StoreError::Unsafe { .. }
    ));
}

#[test]
fn gc_cleans_index_entries_whose_records_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    add_ip(&c, "a");
    add_ip(&c, "b");
    fs::remove_file(d.join("10.0.0.2")).unwrap(); // admin removed a's record by hand
    fs::write(d.join("owners/b@eth0"), "10.0.0.3\n10.0.0.99\n").unwrap();
    let r = ipam::gc(&c.location(), Some(&[owner("a"), owner("b")])).unwrap();
    assert!(r.released.is_empty());
    assert_eq!(r.index_entries_dropped, 2);
    assert!(!d.join("owners/a@eth0").exists());
    assert_eq!(read(d.join("owners/b@eth0")), "10.0.0.3\n");
}

#[test]
fn symlinks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    add_ip(&c, "a"); // .2

    // A symlink planted where the next record would go.
    symlink(&victim, d.join("10.0.0.3")).unwrap();
    let e = ipam::add(&c, &owner("b")).unwrap_err();
    assert_eq!(e.code, code::IO);
    assert!(
        e.msg.contains("10.0.0.3") && e.msg.contains("symlink"),
        "{}",
        e.msg
    );
    assert_eq!(read(&victim), "precious");
    assert!(!d.join("owners/b@eth0").exists(), "nothing left behind");
    // A symlinked index is never written through: refused when the owner
    // has no record, replaced by the index repair (rename) when it has one.
    symlink(&victim, d.join("owners/a@eth0.x")).unwrap();
    let e = ipam::del(&c.location(), &Owner::new("a", "eth0.x")).unwrap_err();
    assert!(e.msg.contains("owners/a@eth0.x"), "{}", e.msg);
    fs::remove_file(d.join("owners/a@eth0")).unwrap();
    symlink(&victim, d.join("owners/a@eth0")).unwrap();
    let s = FileStore::open(&d, LONG).unwrap();
    assert_eq!(
        s.full_scans(),
        1,
        "a replaced index file triggers the repair"
    );
    drop(s);
    assert!(!d.join("owners/a@eth0").is_symlink());
    assert_eq!(read(d.join("owners/a@eth0")), "10.0.0.2\n");
    assert_eq!(read(&victim), "precious");
    ipam::del(&c.location(), &owner("a")).unwrap();
    assert!(!d.join("10.0.0.2").exists());
    assert_eq!(read(&victim), "precious");
    fs::remove_file(d.join("owners/a@eth0.x")).unwrap();
    fs::remove_file(d.join("10.0.0.3")).unwrap();

    // A symlinked lock.
    fs::remove_file(d.join("lock")).unwrap();
    symlink(&victim, d.join("lock")).unwrap();
    let e = CniError::from(FileStore::open(&d, LONG).unwrap_err());
    assert_eq!(e.code, code::IO);
    assert!(
        e.msg.contains("lock") && e.msg.contains("symlink"),
        "{}",
        e.msg
    );
    fs::remove_file(d.join("lock")).unwrap();

    // A symlinked store directory, .tmp or owners.
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    symlink(&real, tmp.path().join("net2")).unwrap();
    assert!(FileStore::open(&tmp.path().join("net2"), LONG).is_err());
    fs::remove_dir_all(d.join(".tmp")).unwrap();
    symlink(&real, d.join(".tmp")).unwrap();
    let e = CniError::from(FileStore::open(&d, LONG).unwrap_err());
    assert!(e.msg.contains(".tmp"), "{}", e.msg);
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    // A symlinked last_reserved hint is ignored and replaced, not followed.
    fs::remove_file(d.join(".tmp")).unwrap();
    fs::remove_file(d.join("last_reserved_ip.0")).unwrap();
    symlink(&victim, d.join("last_reserved_ip.0")).unwrap();
    assert_eq!(add_ip(&c, "c"), "10.0.0.2");
    assert_eq!(read(&victim), "precious");
    assert_eq!(read(d.join("last_reserved_ip.0")), "10.0.0.2");
}

/// A hard link planted as a file the store rewrites in place (the round-robin
/// hint) must not get its target overwritten: the name is replaced by a fresh
/// file. A FIFO planted there neither hangs the ADD nor makes it fail.
#[test]
fn hard_links_and_fifos_planted_as_the_hint_are_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    assert_eq!(add_ip(&c, "a"), "10.0.0.2");
    let hint = d.join("last_reserved_ip.0");
    fs::remove_file(&hint).unwrap();
    fs::hard_link(&victim, &hint).unwrap();
    assert_eq!(add_ip(&c, "b"), "10.0.0.3");
    assert_eq!(read(&victim), "precious", "written through a hard link");
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1);
    assert_eq!(read(&hint), "10.0.0.3");
    assert_eq!(fs::symlink_metadata(&hint).unwrap().nlink(), 1);

    fs::remove_file(&hint).unwrap();
    nix::unistd::mkfifo(&hint, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(add_ip(&c, "c"), "10.0.0.4");
    let t = fs::symlink_metadata(&hint).unwrap().file_type();
    assert!(t.is_file() && !t.is_fifo());
    assert_eq!(read(&hint), "10.0.0.4");
}

#[test]
fn shared_or_symlinked_data_dirs_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let set_mode =
        |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let refused = |data: &Path, needle: &str| {
        let e = ipam::add(&conf(data, "10.0.0.0/24"), &owner("a")).unwrap_err();
        assert_eq!(e.code, code::IO, "{}", e.msg);
        assert!(e.msg.contains(needle), "{needle:?} not in {}", e.msg);
    };

    // A world-writable dataDir (no sticky bit): refused, nothing created there.
    let ww = tmp.path().join("ww");
    fs::create_dir(&ww).unwrap();
    set_mode(&ww, 0o777);
    refused(&ww, "ipam.dataDir is writable by group or others");
    // group-writable: the same
    set_mode(&ww, 0o775);
    refused(&ww, "ipam.dataDir is writable by group or others");
    // sticky (like /tmp): others cannot swap our entries; allowed
    set_mode(&ww, 0o1777);
    assert_eq!(add_ip(&conf(&ww, "10.0.0.0/24"), "a"), "10.0.0.2");

    // A store directory others can write to: refused.
    let d = tmp.path().join("priv");
    fs::create_dir_all(d.join("net")).unwrap();
    set_mode(&d.join("net"), 0o777);
    refused(&d, "must be private");
    assert!(!d.join("net/lock").exists());
    set_mode(&d.join("net"), 0o755); // as the reference host-local creates it
    assert_eq!(add_ip(&conf(&d, "10.0.0.0/24"), "a"), "10.0.0.2");

    // A symlinked dataDir: refused, never followed.
    let link = tmp.path().join("link");
    symlink(&victim, &link).unwrap();
    refused(&link, "ipam.dataDir is a symlink");
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);

    // DEL refuses too (and needs no ranges).
    let e = ipam::del(&conf(&link, "10.0.0.0/24").location(), &owner("a"));
    assert!(e.is_ok() || e.unwrap_err().code == code::IO);
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
}

#[test]
fn lock_timeout_is_code_11_naming_the_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    let held = FileStore::open(&d, LONG).unwrap();
    let t0 = std::time::Instant::now();
    let e = FileStore::open(&d, Duration::from_millis(150)).unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let e = CniError::from(e);
    assert_eq!(e.code, code::TRY_AGAIN_LATER);
    assert!(
        e.msg.contains(d.to_str().unwrap()) && e.msg.contains("try again later"),
        "{}",
        e.msg
    );
    // Zero timeout: one attempt.
    assert!(FileStore::open(&d, Duration::ZERO).is_err());
    // Another thread waiting past the release gets it.
    let d2 = d.clone();
    let waiter = std::thread::spawn(move || FileStore::open(&d2, LONG).map(|_| ()));
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    waiter.join().unwrap().unwrap();
    // The ipam commands report it the same way.
    let c = IpamConfig::from_netconf(
        &json!({"name": "net", "ipam": {"dataDir": tmp.path().to_str().unwrap(), "subnet": "10.0.0.0/24", "lockTimeout": 50}}),
        &CniArgs::default(),
    )
    .unwrap();
    let _held = FileStore::open(&d, LONG).unwrap();
    for e in [
        ipam::add(&c, &owner("a")).unwrap_err(),
        ipam::del(&c.location(), &owner("a")).unwrap_err(),
        ipam::status(&c).unwrap_err(),
    ] {
        assert_eq!(e.code, code::TRY_AGAIN_LATER, "{}", e.msg);
    }
}

#[test]
fn lock_held_by_another_process() {
    // flock is per open file description, so a child `flock` holding it counts.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    drop(FileStore::open(&d, LONG).unwrap());
    let Ok(mut child) = std::process::Command::new("flock")
        .arg(d.join("lock"))
        .args(["sleep", "1"])
        .spawn()
    else {
        return; // util-linux flock not installed: covered by the thread tests
    };
    std::thread::sleep(Duration::from_millis(200));
    let e = FileStore::open(&d, Duration::from_millis(100)).unwrap_err();
    assert!(matches!(e, StoreError::LockTimeout { .. }), "{e}");
    let _ = child.wait();
    drop(FileStore::open(&d, Duration::from_millis(100)).unwrap());
}

#[test]
fn concurrent_adds_get_distinct_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Arc::new(conf(tmp.path(), "10.0.0.0/24"));
    let n = 200;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = Arc::clone(&c);
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                b.wait();
                ipam::add(&c, &owner(&format!("c{i}"))).map(|o| o.ips[0].address.ip())
            })
        })
        .collect();
    let mut ips = BTreeSet::new();
    for h in handles {
        assert!(ips.insert(h.join().unwrap().unwrap()), "duplicate address");
    }
    assert_eq!(ips.len(), n);
    let l = ipam::list(&c.location()).unwrap();
    assert_eq!(l.len(), n);
    let owners: BTreeSet<_> = l.iter().map(|a| a.owner.clone()).collect();
    assert_eq!(owners.len(), n);
    // Concurrent DELs and re-ADDs keep the store consistent.
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let o = owner(&format!("c{i}"));
                if i % 2 == 0 {
                    ipam::del(&c.location(), &o)
                } else {
                    ipam::add(&c, &o).map(|_| ())
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(ipam::list(&c.location()).unwrap().len(), n / 2);
}

#[test]
fn thousand_sequential_adds_on_a_slash_16() {
    // Functional only (no timing asserted): the index keeps ADD/DEL free of
    // directory scans, so this stays quick; see benches for numbers.
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/16");
    let mut last = String::new();
    for i in 0..1000 {
        last = add_ip(&c, &format!("c{i}"));
    }
    assert_eq!(last, "10.0.3.233"); // .0.2 + 999
    ipam::del(&c.location(), &owner("c500")).unwrap();
    assert_eq!(ipam::list(&c.location()).unwrap().len(), 999);
}

#[test]
fn unreserve_and_release_only_touch_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    let mut s = FileStore::open(&d, LONG).unwrap();
    let (a, b) = (owner("a"), owner("b"));
    assert!(s.reserve(&a, ip("10.0.0.2")).unwrap());
    assert!(
        s.reserve(&a, ip("10.0.0.2")).unwrap(),
        "reserve is idempotent for the holder"
    );
    assert!(!s.reserve(&b, ip("10.0.0.2")).unwrap());
    assert!(
        !d.join("owners/b@eth0").exists(),
        "failed reserve leaves no index entry"
    );
    assert!(!s.unreserve(&b, ip("10.0.0.2")).unwrap());
    assert!(s.reserve(&a, ip("fd00::2")).unwrap());
    assert_eq!(read(d.join("owners/a@eth0")), "10.0.0.2\nfd00::2\n");
    assert_eq!(s.owned_by(&a).unwrap(), [ip("10.0.0.2"), ip("fd00::2")]);
    assert!(s.unreserve(&a, ip("10.0.0.2")).unwrap());
    assert_eq!(read(d.join("owners/a@eth0")), "fd00::2\n");
    assert_eq!(s.release(&a).unwrap(), [ip("fd00::2")]);
    assert!(!d.join("owners/a@eth0").exists());
    assert!(s.release(&a).unwrap().is_empty());
    s.commit().unwrap();
    assert!(s.all().unwrap().is_empty());
    assert_eq!(s.last_reserved(3).unwrap(), None);
    s.set_last_reserved(3, ip("10.0.0.9")).unwrap();
    assert_eq!(s.last_reserved(3).unwrap(), Some(ip("10.0.0.9")));
    fs::write(d.join("last_reserved_ip.3"), "garbage").unwrap();
    assert_eq!(s.last_reserved(3).unwrap(), None);
}

#[test]
fn odd_entries_in_the_store_dir_are_ignored_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("README"), "hello").unwrap();
    fs::write(d.join("010.0.0.2"), "x").unwrap(); // not canonical: not a record
    fs::create_dir(d.join("10.0.0.3")).unwrap(); // a directory named like an IP
    assert_eq!(add_ip(&c, "a"), "10.0.0.2");
    let e = ipam::add(&c, &owner("b")).unwrap_err();
    assert_eq!(e.code, code::IO);
    assert!(
        e.msg.contains("10.0.0.3") && e.msg.contains("not a regular file"),
        "{}",
        e.msg
    );
    assert_eq!(ipam::list(&c.location()).unwrap().len(), 1);
    // owners/ as a file is refused, naming it.
    fs::remove_dir(d.join("10.0.0.3")).unwrap();
    fs::remove_dir_all(d.join("owners")).unwrap();
    fs::write(d.join("owners"), "").unwrap();
    let e = ipam::add(&c, &owner("b")).unwrap_err();
    assert!(e.msg.contains("owners"), "{}", e.msg);
}

#[test]
fn gc_reports_unreadable_entries_and_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/24");
    let d = tmp.path().join("net");
    add_ip(&c, "a");
    add_ip(&c, "b");
    symlink(tmp.path(), d.join("10.0.0.50")).unwrap();
    // A record whose owner would be a path traversal as an index name.
    fs::write(d.join("10.0.0.51"), "../../evil\r\neth0").unwrap();
    let r = ipam::gc(&c.location(), Some(&[owner("a")])).unwrap();
    let released: Vec<String> = r.released.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(released, ["10.0.0.3", "10.0.0.51"]);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let e = r.error().unwrap();
    assert_eq!(e.code, code::IO);
    assert!(e.msg.contains("10.0.0.50"), "{}", e.msg);
    assert!(
        d.join("10.0.0.50").is_symlink(),
        "never removed through or as a symlink"
    );
    // Listing skips the symlink rather than failing.
    assert_eq!(ipam::list(&c.location()).unwrap().len(), 1);
}

#[test]
fn owners_unsafe_as_file_names_never_reach_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    let mut s = FileStore::open(&d, LONG).unwrap();
    for o in [
        Owner::new("../x", "eth0"),
        Owner::new("a", "../../x"),
        Owner::new("", ""),
    ] {
        assert!(s.owned_by(&o).unwrap().is_empty());
        assert!(s.release(&o).unwrap().is_empty());
        assert!(s.reserve(&o, ip("10.0.0.2")).is_err());
    }
    assert!(s.all().unwrap().is_empty());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

/// Prints ADD/DEL latency at growing store sizes; asserts nothing about time.
/// `cargo test --release --lib perf_probe -- --ignored --nocapture`
#[test]
#[ignore]
fn perf_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf(tmp.path(), "10.0.0.0/16");
    let mut n = 0usize;
    for target in [0usize, 1000, 20_000] {
        while n < target {
            add_ip(&c, &format!("fill{n}"));
            n += 1;
        }
        let mut adds = Vec::new();
        let mut dels = Vec::new();
        for i in 0..200 {
            let o = owner(&format!("probe{i}"));
            let t = std::time::Instant::now();
            ipam::add(&c, &o).unwrap();
            adds.push(t.elapsed());
            let t = std::time::Instant::now();
            ipam::del(&c.location(), &o).unwrap();
            dels.push(t.elapsed());
        }
        adds.sort();
        dels.sort();
        println!(
            "N={target}: ADD median {:?} p90 {:?}; DEL median {:?} p90 {:?}",
            adds[100], adds[180], dels[100], dels[180]
        );
    }
}

/// The libtest name of a child helper of this module (for `--exact`), so a
/// move of the module cannot silently leave the parent running no child.
fn child_test(name: &str) -> String {
    let module = module_path!();
    let path = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{path}::{name}")
}

/// Spawn this test binary running only the ignored helper `name`.
fn spawn_child(name: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        &child_test(name),
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// Child side of `concurrent_processes_get_distinct_addresses`, run by it in
/// separate processes; ignored in a normal run (it is not a test).
#[test]
#[ignore = "helper: run by concurrent_processes_get_distinct_addresses"]
fn child_process_add() {
    let dir = std::env::var("MACTRUNK_TEST_CHILD_DIR").expect("set by the parent test");
    let id = std::env::var("MACTRUNK_TEST_CHILD_ID").expect("set by the parent test");
    let c = conf(Path::new(&dir), "10.0.0.0/24");
    let out = ipam::add(&c, &owner(&id)).unwrap();
    println!("ALLOCATED {}", out.ips[0].address.ip());
}

#[test]
fn concurrent_processes_get_distinct_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 50;
    let children: Vec<_> = (0..n)
        .map(|i| {
            spawn_child("child_process_add")
                .env("MACTRUNK_TEST_CHILD_DIR", tmp.path())
                .env("MACTRUNK_TEST_CHILD_ID", format!("p{i}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ips = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // libtest may print "test <name> ... " on the same line first.
        let line = text
            .split("ALLOCATED ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("child printed no address: {text}"))
            .to_string();
        assert!(ips.insert(line), "duplicate address");
    }
    assert_eq!(ips.len(), n);
    assert_eq!(
        ipam::list(&conf(tmp.path(), "10.0.0.0/24").location())
            .unwrap()
            .len(),
        n
    );
}

/// Child side of `kill_9_leaves_a_consistent_store`: ADD/DEL in a loop
/// until killed (bounded, in case the parent is gone). Ignored in a normal run.
#[test]
#[ignore = "helper: run by kill_9_leaves_a_consistent_store"]
fn child_process_loop() {
    let dir = std::env::var("MACTRUNK_TEST_LOOP_DIR").expect("set by the parent test");
    let round = std::env::var("MACTRUNK_TEST_LOOP_ROUND").expect("set by the parent test");
    let c = conf(Path::new(&dir), "10.0.0.0/22");
    for i in 0..5000 {
        let o = owner(&format!("r{round}-{i}"));
        let _ = ipam::add(&c, &o);
        if i % 3 == 0 {
            let _ = ipam::del(&c.location(), &o);
        }
    }
}

#[test]
fn kill_9_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..12 {
        let mut child = spawn_child("child_process_loop")
            .env("MACTRUNK_TEST_LOOP_DIR", tmp.path())
            .env("MACTRUNK_TEST_LOOP_ROUND", round.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(40 + seed % 120));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // Before anyone reopens: every record is listed in its owner's index
    // (the index is written first), whatever the kill interrupted.
    let mut records = 0;
    let mut per_owner: BTreeMap<Owner, usize> = BTreeMap::new();
    for entry in fs::read_dir(&d).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(ip) = record_name(&name) else {
            continue;
        };
        let o = Owner::from_record(&read(d.join(&name)));
        let idx = parse_index(&read(
            d.join(format!("owners/{}@{}", o.container_id, o.ifname)),
        ));
        assert!(idx.contains(&ip), "{ip} held by {o} is not in its index");
        *per_owner.entry(o).or_default() += 1;
        records += 1;
    }
    assert!(
        per_owner.values().all(|n| *n == 1),
        "an owner holds two addresses"
    );
    eprintln!(
        "records {records}, temp files left by kills: {}",
        fs::read_dir(d.join(".tmp")).unwrap().count()
    );
    // Reopening clears the temp files and the store stays usable.
    let mut s = FileStore::open(&d, LONG).unwrap();
    assert_eq!(fs::read_dir(d.join(".tmp")).unwrap().count(), 0);
    assert_eq!(s.all().unwrap().len(), records);
    drop(s);
    assert!(records > 0, "the children allocated nothing");
    let c = conf(tmp.path(), "10.0.0.0/22");
    add_ip(&c, "after");
}
