//! The command line of the admin tool: the subcommands and their arguments.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::cni::names::is_valid_id;
use crate::ipam::config::DEFAULT_DATA_DIR;
use crate::ipam::store::Owner;

/// Where runtimes look for network configs.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// `--help`: the text to print (top level or one command's).
    Help(&'static str),
    /// `--version` / `-V`: the same text as the plugins' `--version`.
    Version,
    List {
        data_dir: PathBuf,
        network: Option<String>,
    },
    Usage {
        source: ConfSource,
    },
    Release {
        data_dir: PathBuf,
        network: String,
        target: ReleaseTarget,
    },
    Gc {
        data_dir: PathBuf,
        network: String,
        keep: Vec<Keep>,
        keep_files: Vec<PathBuf>,
        dry_run: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfSource {
    File(PathBuf),
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseTarget {
    Ip(IpAddr),
    Container { id: String, ifname: Option<String> },
}

/// One live attachment for `gc`: a container, or one interface of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Keep {
    pub container_id: String,
    /// `None`: every interface of the container.
    pub ifname: Option<String>,
}

impl Keep {
    /// `ID` or `ID:IFNAME` (also `ID IFNAME`, as in a keep file).
    pub fn parse(s: &str) -> Result<Keep, String> {
        let s = s.trim();
        let (id, ifname) = match s.split_once([':', ' ', '\t']) {
            Some((id, i)) => (id.trim(), Some(i.trim())),
            None => (s, None),
        };
        Keep::new(id, ifname)
    }

    pub fn new(id: &str, ifname: Option<&str>) -> Result<Keep, String> {
        if !is_valid_id(id) {
            return Err(format!(
                "container ID {id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            ));
        }
        let ifname = match ifname {
            None => None,
            Some(i) if crate::cni::names::interface_name_problem(i).is_none() => {
                Some(i.to_string())
            }
            Some(i) => return Err(format!("interface name {i:?} is not valid")),
        };
        Ok(Keep {
            container_id: id.to_string(),
            ifname,
        })
    }

    /// Does this entry keep the allocation of `owner`? A legacy record (no
    /// interface) is kept when its container is.
    pub fn keeps(&self, owner: &Owner) -> bool {
        self.container_id == owner.container_id
            && match &self.ifname {
                None => true,
                Some(i) => owner.is_legacy() || *i == owner.ifname,
            }
    }
}

/// A usage error (exit 2): message and the help text of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub msg: String,
    pub help: &'static str,
}

/// A parsed command line plus the global options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub cmd: Cmd,
    pub json: bool,
}

pub const HELP: &str = "\
mactrunk-ipam: the IPAM plugin of mactrunk (a CNI plugin when CNI_COMMAND is set),
and, run with arguments, an admin tool for its IPAM stores (<dataDir>/<network>/,
the layout of the reference host-local, so host-local stores work too).

Usage:
  mactrunk-ipam list    [--data-dir DIR] [NETWORK]
  mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
  mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
  mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run]
  mactrunk-ipam COMMAND --help
  mactrunk-ipam --version

Options for every command:
  --json        one JSON document on stdout instead of a table (also for
                failures: {\"error\": MESSAGE, \"exitStatus\": N})
  -h, --help    help

--data-dir defaults to /var/lib/cni/networks (the plugins' ipam.dataDir default).
Exit status: 0 success, 1 failure, 2 usage error.
";

pub const HELP_LIST: &str = "\
mactrunk-ipam list [--data-dir DIR] [NETWORK] [--json]

List the networks in DIR (default /var/lib/cni/networks) and their allocations:
IP, container ID, interface, and since when (the record's mtime, UTC). With NETWORK,
only that network (exit 1 if it has no store). Legacy records written without an
interface show '-' (JSON: \"ifname\": null). A store that cannot be read (unsafe
permissions, locked, unreadable) is reported on an 'error:' line (JSON: \"errors\")
and the exit status is 1; the others are still listed. Writes nothing, anywhere.
";

pub const HELP_USAGE: &str = "\
mactrunk-ipam usage [--config FILE | --conf-dir DIR] [--json]

Capacity, used and free addresses per range set, for the network config FILE
(.conf or .conflist) or for every config in DIR (default /etc/cni/net.d) whose
ipam.type is mactrunk-ipam or host-local (same store layout). CAPACITY counts the
addresses ADD can hand out (range minus gateway and exclusions), USED those of them
allocated, FREE the rest; STATIC counts allocations in the subnet but outside
[rangeStart, rangeEnd] (static IPs). JSON numbers larger than 2^64-1 are strings.
";

pub const HELP_RELEASE: &str = "\
mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF]) [--json]

Release one allocation (--ip) or those of a container (--container; with --ifname only
that interface's, plus legacy records of the container). Does not touch any interface:
use it for containers that are gone. Exit 1 if nothing matched.
";

pub const HELP_GC: &str = "\
mactrunk-ipam gc [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run] [--json]

Release every allocation of NETWORK whose container is not listed as live. --keep ID
keeps all interfaces of container ID, --keep ID:IFNAME one interface (repeatable).
--keep-file FILE: one ID[:IFNAME] per line (# comments), or a JSON list
[{\"containerID\": ..., \"ifname\": ...}]; '-' reads stdin. At least one --keep or
--keep-file is required (an empty keep file releases everything). --dry-run only
reports what would be released. Also drops stale owner-index entries.
";

fn usage_err(msg: impl Into<String>, help: &'static str) -> UsageError {
    UsageError {
        msg: msg.into(),
        help,
    }
}

/// Parse the arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Invocation, UsageError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(usage_err("missing command", HELP));
    };
    let help: &'static str = match sub.as_str() {
        "-h" | "--help" | "help" => {
            let topic = match rest.first().map(String::as_str) {
                Some("list") => HELP_LIST,
                Some("usage") => HELP_USAGE,
                Some("release") => HELP_RELEASE,
                Some("gc") => HELP_GC,
                _ => HELP,
            };
            return Ok(Invocation {
                cmd: Cmd::Help(topic),
                json: false,
            });
        }
        "--version" | "-V" | "version" => {
            return Ok(Invocation {
                cmd: Cmd::Version,
                json: false,
            });
        }
        "list" | "ls" => HELP_LIST,
        "usage" => HELP_USAGE,
        "release" => HELP_RELEASE,
        "gc" => HELP_GC,
        other => return Err(usage_err(format!("unknown command {other:?}"), HELP)),
    };

    // Options may come before or after the positional arguments.
    let mut json = false;
    let mut data_dir: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut conf_dir: Option<PathBuf> = None;
    let mut ip: Option<IpAddr> = None;
    let mut container: Option<String> = None;
    let mut ifname: Option<String> = None;
    let mut keep: Vec<Keep> = Vec::new();
    let mut keep_files: Vec<PathBuf> = Vec::new();
    let mut dry_run = false;
    let mut positional: Vec<String> = Vec::new();

    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |opt: &str| -> Result<String, UsageError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| usage_err(format!("{opt} needs a value"), help)),
            }
        };
        let allowed = |ok: bool| -> Result<(), UsageError> {
            if ok {
                Ok(())
            } else {
                Err(usage_err(
                    format!("option {name} does not apply to {sub}"),
                    help,
                ))
            }
        };
        let once = |set: bool| -> Result<(), UsageError> {
            if set {
                Err(usage_err(format!("{name} given twice"), help))
            } else {
                Ok(())
            }
        };
        match name {
            "-h" | "--help" => {
                return Ok(Invocation {
                    cmd: Cmd::Help(help),
                    json: false,
                });
            }
            "--json" => json = true,
            "--data-dir" => {
                allowed(help != HELP_USAGE)?;
                once(data_dir.is_some())?;
                data_dir = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--config" => {
                allowed(help == HELP_USAGE)?;
                once(config.is_some())?;
                config = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--conf-dir" => {
                allowed(help == HELP_USAGE)?;
                once(conf_dir.is_some())?;
                conf_dir = Some(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--ip" => {
                allowed(help == HELP_RELEASE)?;
                once(ip.is_some())?;
                let v = value(name)?;
                // Accept an address with a prefix too (as printed by `ip addr`).
                let bare = v.split_once('/').map_or(v.as_str(), |(a, _)| a);
                ip =
                    Some(bare.parse().map_err(|_| {
                        usage_err(format!("--ip: {v:?} is not an IP address"), help)
                    })?);
            }
            "--container" => {
                allowed(help == HELP_RELEASE)?;
                once(container.is_some())?;
                container = Some(value(name)?);
            }
            "--ifname" => {
                allowed(help == HELP_RELEASE)?;
                once(ifname.is_some())?;
                ifname = Some(value(name)?);
            }
            "--keep" => {
                allowed(help == HELP_GC)?;
                let v = value(name)?;
                keep.push(
                    Keep::parse(&v).map_err(|e| usage_err(format!("--keep {v}: {e}"), help))?,
                );
            }
            "--keep-file" => {
                allowed(help == HELP_GC)?;
                keep_files.push(PathBuf::from(nonempty(&value(name)?, name, help)?));
            }
            "--dry-run" | "-n" => {
                allowed(help == HELP_GC)?;
                dry_run = true;
            }
            "--" => positional.extend(it.by_ref().cloned()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(usage_err(format!("unknown option {s}"), help));
            }
            _ => positional.push(arg.clone()),
        }
    }

    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let network = |positional: &[String], required: bool| -> Result<Option<String>, UsageError> {
        match positional {
            [] if required => Err(usage_err("missing NETWORK", help)),
            [] => Ok(None),
            [n] if is_valid_id(n) => Ok(Some(n.clone())),
            [n] => Err(usage_err(
                format!("NETWORK {n:?} is not a valid network name (^[a-zA-Z0-9][a-zA-Z0-9_.-]*$)"),
                help,
            )),
            [_, extra, ..] => Err(usage_err(format!("unexpected argument {extra:?}"), help)),
        }
    };

    let cmd = match help {
        HELP_LIST => Cmd::List {
            data_dir,
            network: network(&positional, false)?,
        },
        HELP_USAGE => {
            if let Some(p) = positional.first() {
                return Err(usage_err(format!("unexpected argument {p:?}"), help));
            }
            let source = match (config, conf_dir) {
                (Some(_), Some(_)) => {
                    return Err(usage_err(
                        "--config and --conf-dir exclude each other",
                        help,
                    ));
                }
                (Some(f), None) => ConfSource::File(f),
                (None, Some(d)) => ConfSource::Dir(d),
                (None, None) => ConfSource::Dir(PathBuf::from(DEFAULT_CONF_DIR)),
            };
            Cmd::Usage { source }
        }
        HELP_RELEASE => {
            let network = network(&positional, true)?.unwrap_or_default();
            let target = match (ip, container, ifname) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(usage_err("--ip excludes --container and --ifname", help));
                }
                (Some(ip), None, None) => ReleaseTarget::Ip(ip),
                (None, Some(id), ifname) => {
                    let k = Keep::new(&id, ifname.as_deref())
                        .map_err(|e| usage_err(format!("--container/--ifname: {e}"), help))?;
                    ReleaseTarget::Container {
                        id: k.container_id,
                        ifname: k.ifname,
                    }
                }
                (None, None, Some(_)) => {
                    return Err(usage_err("--ifname needs --container", help));
                }
                (None, None, None) => {
                    return Err(usage_err(
                        "say what to release: --ip IP or --container ID",
                        help,
                    ));
                }
            };
            Cmd::Release {
                data_dir,
                network,
                target,
            }
        }
        _ => {
            let network = network(&positional, true)?.unwrap_or_default();
            if keep.is_empty() && keep_files.is_empty() {
                return Err(usage_err(
                    "gc needs the live containers: --keep ID[:IFNAME] or --keep-file FILE \
                     (an empty file releases everything)",
                    help,
                ));
            }
            Cmd::Gc {
                data_dir,
                network,
                keep,
                keep_files,
                dry_run,
            }
        }
    };
    Ok(Invocation { cmd, json })
}

fn nonempty(v: &str, opt: &str, help: &'static str) -> Result<String, UsageError> {
    if v.is_empty() {
        Err(usage_err(format!("{opt} needs a non-empty value"), help))
    } else {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse(s: &str) -> Result<Invocation, UsageError> {
        parse_args(&args(s))
    }

    fn cmd(s: &str) -> Cmd {
        parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.msg)).cmd
    }

    fn usage_msg(s: &str) -> String {
        match parse(s) {
            Err(e) => e.msg,
            Ok(i) => panic!("{s}: parsed as {i:?}"),
        }
    }

    #[test]
    fn parse_list() {
        assert_eq!(
            cmd("list"),
            Cmd::List {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: None
            }
        );
        assert_eq!(
            cmd("list --data-dir /d net1"),
            Cmd::List {
                data_dir: "/d".into(),
                network: Some("net1".into())
            }
        );
        assert_eq!(cmd("ls net1 --data-dir=/d"), cmd("list --data-dir /d net1"));
        let inv = parse("list --json").unwrap();
        assert!(inv.json);
        assert!(!parse("list").unwrap().json);
        assert!(usage_msg("list a b").contains("unexpected argument"));
        assert!(usage_msg("list ../etc").contains("not a valid network name"));
        assert!(usage_msg("list --data-dir").contains("needs a value"));
        assert!(usage_msg("list --data-dir=").contains("non-empty"));
        assert!(usage_msg("list --ip 10.0.0.1").contains("does not apply"));
        assert!(usage_msg("list --bogus").contains("unknown option --bogus"));
        assert!(usage_msg("list --data-dir /a --data-dir /b").contains("twice"));
    }

    #[test]
    fn parse_help_and_errors() {
        assert_eq!(cmd("--help"), Cmd::Help(HELP));
        assert_eq!(cmd("-h"), Cmd::Help(HELP));
        assert_eq!(cmd("help gc"), Cmd::Help(HELP_GC));
        assert_eq!(cmd("gc --help"), Cmd::Help(HELP_GC));
        assert_eq!(cmd("release net -h"), Cmd::Help(HELP_RELEASE));
        assert_eq!(cmd("usage --help"), Cmd::Help(HELP_USAGE));
        assert_eq!(cmd("list --help"), Cmd::Help(HELP_LIST));
        assert_eq!(cmd("--version"), Cmd::Version);
        assert_eq!(cmd("-V"), Cmd::Version);
        assert_eq!(parse_args(&[]).unwrap_err().help, HELP);
        let e = parse("frobnicate").unwrap_err();
        assert!(e.msg.contains("unknown command"));
        assert_eq!(e.help, HELP);
        // a usage error carries the command's help
        assert_eq!(parse("gc net").unwrap_err().help, HELP_GC);
    }

    #[test]
    fn parse_usage() {
        assert_eq!(
            cmd("usage"),
            Cmd::Usage {
                source: ConfSource::Dir(DEFAULT_CONF_DIR.into())
            }
        );
        assert_eq!(
            cmd("usage --config /x.conf"),
            Cmd::Usage {
                source: ConfSource::File("/x.conf".into())
            }
        );
        assert_eq!(
            cmd("usage --conf-dir /etc/cni/net.d --json"),
            Cmd::Usage {
                source: ConfSource::Dir("/etc/cni/net.d".into())
            }
        );
        assert!(usage_msg("usage --config a --conf-dir b").contains("exclude"));
        assert!(usage_msg("usage net").contains("unexpected argument"));
        assert!(usage_msg("usage --data-dir /d").contains("does not apply"));
    }

    #[test]
    fn parse_release() {
        assert_eq!(
            cmd("release net --ip 10.0.0.5"),
            Cmd::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ReleaseTarget::Ip("10.0.0.5".parse().unwrap())
            }
        );
        assert_eq!(
            cmd("release net --ip 10.0.0.5/24"),
            cmd("release net --ip 10.0.0.5")
        );
        assert_eq!(
            cmd("release --data-dir /d net --container abc --ifname net1"),
            Cmd::Release {
                data_dir: "/d".into(),
                network: "net".into(),
                target: ReleaseTarget::Container {
                    id: "abc".into(),
                    ifname: Some("net1".into())
                }
            }
        );
        assert_eq!(
            cmd("release net --ip fd00::5"),
            Cmd::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ReleaseTarget::Ip("fd00::5".parse().unwrap())
            }
        );
        assert!(usage_msg("release --ip 10.0.0.5").contains("missing NETWORK"));
        assert!(usage_msg("release net").contains("--ip IP or --container"));
        assert!(usage_msg("release net --ip x").contains("not an IP address"));
        assert!(usage_msg("release net --ip 10.0.0.5 --container a").contains("excludes"));
        assert!(usage_msg("release net --ifname eth0").contains("needs --container"));
        assert!(usage_msg("release net --container ../x").contains("container ID"));
        assert!(usage_msg("release net --container a --ifname a/b").contains("interface"));
        assert!(usage_msg("release net --keep a").contains("does not apply"));
    }

    #[test]
    fn parse_gc() {
        assert_eq!(
            cmd("gc net --keep a --keep b:eth0 --dry-run"),
            Cmd::Gc {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                keep: vec![
                    Keep {
                        container_id: "a".into(),
                        ifname: None
                    },
                    Keep {
                        container_id: "b".into(),
                        ifname: Some("eth0".into())
                    }
                ],
                keep_files: vec![],
                dry_run: true,
            }
        );
        assert_eq!(
            cmd("gc net --keep-file /k --data-dir /d"),
            Cmd::Gc {
                data_dir: "/d".into(),
                network: "net".into(),
                keep: vec![],
                keep_files: vec!["/k".into()],
                dry_run: false,
            }
        );
        assert!(usage_msg("gc net").contains("--keep"));
        assert!(usage_msg("gc --keep a").contains("missing NETWORK"));
        assert!(usage_msg("gc net --keep a/b").contains("container ID"));
        assert!(usage_msg("gc net --keep a:").contains("interface name"));
    }

    #[test]
    fn keep_matching() {
        let k = Keep::parse("c1").unwrap();
        assert!(k.keeps(&Owner::new("c1", "eth0")));
        assert!(k.keeps(&Owner::new("c1", "net1")));
        assert!(k.keeps(&Owner::new("c1", "")));
        assert!(!k.keeps(&Owner::new("c2", "eth0")));
        let k = Keep::parse("c1:net1").unwrap();
        assert!(k.keeps(&Owner::new("c1", "net1")));
        assert!(!k.keeps(&Owner::new("c1", "eth0")));
        assert!(
            k.keeps(&Owner::new("c1", "")),
            "legacy record of the container"
        );
        assert_eq!(Keep::parse(" c1 net1 ").unwrap(), k);
    }
}
