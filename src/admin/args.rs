//! The command line of the admin tool: one [`Command`] variant per
//! subcommand, with typed fields, parsed with lexopt (a lexer with no
//! setup and no global state; `mactrunk-ipam` gets here only when run with
//! arguments and without `CNI_COMMAND`, never on the plugin path).
//!
//! Adding a subcommand: a [`Command`] variant, a help text, a `parse_*`
//! function, a row in [`COMMANDS`] (name, help, options); then its arm in
//! `commands::execute` and its report in `report.rs`.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::cni::names::{interface_name_problem, is_valid_id};
use crate::ipam::config::DEFAULT_DATA_DIR;
use crate::ipam::store::Owner;

/// Where runtimes look for network configs.
const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `--help`: the text to print (top level or one command's).
    Help(&'static str),
    /// `--version` / `-V`: the same text as the plugins' `--version`.
    Version,
    /// A command to run, and whether `--json` was given.
    Run { cmd: Command, json: bool },
}

/// A subcommand and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
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
    Metrics {
        data_dir: PathBuf,
        /// Where the networks' configs are (their range sets); `explicit`:
        /// given on the command line, so it must exist.
        source: ConfSource,
        explicit: bool,
        textfile: Option<PathBuf>,
        /// Count allocations whose network namespace is gone.
        netns_check: bool,
    },
    /// Cluster IPAM: every block of NETWORK in etcd.
    Blocks {
        data_dir: PathBuf,
        network: String,
    },
    /// Cluster IPAM: delete every block of a node that is gone.
    ReleaseNode {
        data_dir: PathBuf,
        network: String,
        node: String,
        force: bool,
    },
}

/// Where `usage` finds network configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfSource {
    File(PathBuf),
    Dir(PathBuf),
}

/// What `release` gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReleaseTarget {
    Ip(IpAddr),
    /// Every address of a container, or of one of its interfaces.
    Container(Keep),
}

/// One live attachment for `gc` (or a `release --container` target): a
/// container, or one interface of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Keep {
    pub(crate) container_id: String,
    /// `None`: every interface of the container.
    pub(crate) ifname: Option<String>,
}

impl Keep {
    /// `ID` or `ID:IFNAME` (also `ID IFNAME`, as in a keep file).
    pub(crate) fn parse(s: &str) -> Result<Keep, String> {
        let s = s.trim();
        let (id, ifname) = match s.split_once([':', ' ', '\t']) {
            Some((id, i)) => (id.trim(), Some(i.trim())),
            None => (s, None),
        };
        Keep::new(id, ifname)
    }

    pub(crate) fn new(id: &str, ifname: Option<&str>) -> Result<Keep, String> {
        if !is_valid_id(id) {
            return Err(format!(
                "container ID {id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            ));
        }
        let ifname = match ifname {
            None => None,
            Some(i) if interface_name_problem(i).is_none() => Some(i.to_string()),
            Some(i) => return Err(format!("interface name {i:?} is not valid")),
        };
        Ok(Keep {
            container_id: id.to_string(),
            ifname,
        })
    }

    /// Does this entry keep the allocation of `owner`? A legacy record (no
    /// interface) is kept when its container is.
    pub(crate) fn keeps(&self, owner: &Owner) -> bool {
        self.container_id == owner.container_id
            && match &self.ifname {
                None => true,
                Some(i) => owner.is_legacy() || *i == owner.ifname,
            }
    }
}

/// A usage error (exit 2): the message and the help text of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError {
    pub(crate) msg: String,
    pub(crate) help: &'static str,
}

pub(crate) const HELP: &str = "\
mactrunk-ipam: the IPAM plugin of mactrunk (a CNI plugin when CNI_COMMAND is set),
and, run with arguments, an admin tool for its IPAM stores (<dataDir>/<network>/,
the layout of the reference host-local, so host-local stores work too).

Usage:
  mactrunk-ipam list    [--data-dir DIR] [NETWORK]
  mactrunk-ipam usage   [--config FILE | --conf-dir DIR]
  mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF])
  mactrunk-ipam gc      [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run]
  mactrunk-ipam metrics [--data-dir DIR] [--config FILE | --conf-dir DIR] [--textfile PATH] [--no-netns-check]
  mactrunk-ipam blocks  [--data-dir DIR] NETWORK
  mactrunk-ipam release-node [--data-dir DIR] NETWORK NODE [--force]
  mactrunk-ipam COMMAND --help
  mactrunk-ipam --version

Options for every command:
  --json        one JSON document on stdout instead of a table (also for
                failures: {\"error\": MESSAGE, \"exitStatus\": N})
  -h, --help    help

--data-dir defaults to /var/lib/cni/networks (the plugins' ipam.dataDir default).
Exit status: 0 success, 1 failure, 2 usage error.
";

const HELP_LIST: &str = "\
mactrunk-ipam list [--data-dir DIR] [NETWORK] [--json]

List the networks in DIR (default /var/lib/cni/networks) and their allocations:
IP, container ID, interface, and since when (the record's mtime, UTC). With NETWORK,
only that network (exit 1 if it has no store). Legacy records written without an
interface show '-' (JSON: \"ifname\": null). A store that cannot be read (unsafe
permissions, locked, unreadable) is reported on an 'error:' line (JSON: \"errors\")
and the exit status is 1; the others are still listed. Writes nothing, anywhere.
";

const HELP_USAGE: &str = "\
mactrunk-ipam usage [--config FILE | --conf-dir DIR] [--json]

Capacity, used and free addresses per range set, for the network config FILE
(.conf or .conflist) or for every config in DIR (default /etc/cni/net.d) whose
ipam.type is mactrunk-ipam or host-local (same store layout). CAPACITY counts the
addresses ADD can hand out (range minus gateway and exclusions), USED those of them
allocated, FREE the rest; STATIC counts allocations in the subnet but outside
[rangeStart, rangeEnd] (static IPs). JSON numbers larger than 2^64-1 are strings.
";

const HELP_RELEASE: &str = "\
mactrunk-ipam release [--data-dir DIR] NETWORK (--ip IP | --container ID [--ifname IF]) [--json]

Release one allocation (--ip) or those of a container (--container; with --ifname only
that interface's, plus legacy records of the container). Does not touch any interface:
use it for containers that are gone. Exit 1 if nothing matched.
";

const HELP_GC: &str = "\
mactrunk-ipam gc [--data-dir DIR] NETWORK (--keep ID[:IFNAME]... | --keep-file FILE) [--dry-run] [--json]

Release every allocation of NETWORK whose container is not listed as live. --keep ID
keeps all interfaces of container ID, --keep ID:IFNAME one interface (repeatable).
--keep-file FILE: one ID[:IFNAME] per line (# comments), or a JSON list
[{\"containerID\": ..., \"ifname\": ...}]; '-' reads stdin. At least one --keep or
--keep-file is required (an empty keep file releases everything). --dry-run only
reports what would be released. Also drops stale owner-index entries.
";

const HELP_METRICS: &str = "\
mactrunk-ipam metrics [--data-dir DIR] [--config FILE | --conf-dir DIR] [--textfile PATH]
                      [--no-netns-check] [--json]

Prometheus gauges (text format) for node_exporter's textfile collector: per network
and range set the capacity and the used, free and quarantined addresses (range sets
from the configs in --conf-dir, default /etc/cni/net.d, or --config FILE); per store
in DIR (default /var/lib/cni/networks) and in the configs' dataDirs the allocations,
quarantined addresses, the oldest allocation's age and the orphaned allocations (their
recorded network namespace no longer exists: the container is gone, no DEL came;
needs the host's PID and mount namespaces; --no-netns-check leaves it out); per VLAN
link mactrunk created, its users. --textfile PATH writes the file atomically (a
temp file in its directory, then rename; mode 0644) and prints nothing. Exit 1 if a
config, store or record could not be read (the rest is still reported; the count is
mactrunk_metrics_errors). Writes nothing else.
";

const HELP_BLOCKS: &str = "\
mactrunk-ipam blocks [--data-dir DIR] NETWORK [--json]

Cluster IPAM (ipam.cluster, docs/cluster.md): every block of NETWORK in etcd: CIDR,
owner node, when it was claimed (UTC), and for this node's blocks the addresses used
and free in the local store (FREE: the block's addresses in its subnet minus the
subnet's network and broadcast addresses and the used ones; a gateway or an excluded
address inside the block counts as free). Then each node's usage report (addresses in
use as of its last talk with etcd). etcd is found through DIR/NETWORK/.cluster.json,
which the plugin writes when it first talks to etcd. Writes nothing.
";

const HELP_RELEASE_NODE: &str = "\
mactrunk-ipam release-node [--data-dir DIR] NETWORK NODE [--force] [--json]

Cluster IPAM: delete every block of NODE (a node that is gone for good) from etcd, so
other nodes can claim them, and its usage report. Refused without --force when NODE's
usage report says it still uses addresses, and when NODE is this node. A block that
changed since it was listed (claimed again meanwhile) is left alone. Releasing the
blocks of a node that still runs containers hands their addresses out twice: only
--force a node that is really gone. etcd is found as for `blocks`.
";

/// One subcommand: how it is called, its help, the options it takes
/// besides `--json` and `-h`/`--help` (as typed: `--data-dir`, `-n`), and
/// its parser.
struct Spec {
    name: &'static str,
    aliases: &'static [&'static str],
    help: &'static str,
    options: &'static [&'static str],
    parse: fn(&mut Args) -> Result<Command, Stop>,
}

static COMMANDS: [Spec; 7] = [
    Spec {
        name: "list",
        aliases: &["ls"],
        help: HELP_LIST,
        options: &["--data-dir"],
        parse: parse_list,
    },
    Spec {
        name: "usage",
        aliases: &[],
        help: HELP_USAGE,
        options: &["--config", "--conf-dir"],
        parse: parse_usage,
    },
    Spec {
        name: "release",
        aliases: &[],
        help: HELP_RELEASE,
        options: &["--data-dir", "--ip", "--container", "--ifname"],
        parse: parse_release,
    },
    Spec {
        name: "gc",
        aliases: &[],
        help: HELP_GC,
        options: &["--data-dir", "--keep", "--keep-file", "--dry-run", "-n"],
        parse: parse_gc,
    },
    Spec {
        name: "metrics",
        aliases: &[],
        help: HELP_METRICS,
        options: &[
            "--data-dir",
            "--config",
            "--conf-dir",
            "--textfile",
            "--no-netns-check",
        ],
        parse: parse_metrics,
    },
    Spec {
        name: "blocks",
        aliases: &[],
        help: HELP_BLOCKS,
        options: &["--data-dir"],
        parse: parse_blocks,
    },
    Spec {
        name: "release-node",
        aliases: &[],
        help: HELP_RELEASE_NODE,
        options: &["--data-dir", "--force"],
        parse: parse_release_node,
    },
];

fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// Parse the arguments (without the program name). An argument that is not
/// UTF-8 is a usage error.
pub(crate) fn parse(args: &[OsString]) -> Result<Parsed, UsageError> {
    let args = utf8(args)?;
    let Some((first, rest)) = args.split_first() else {
        return Err(usage_err("missing command", HELP));
    };
    match first.as_str() {
        "-h" | "--help" | "help" => {
            let topic = rest.first().and_then(|t| find(t));
            Ok(Parsed::Help(topic.map_or(HELP, |s| s.help)))
        }
        "--version" | "-V" | "version" => Ok(Parsed::Version),
        typed => match find(typed) {
            Some(spec) => Args::new(spec, typed, rest).run(),
            None => Err(usage_err(format!("unknown command {typed:?}"), HELP)),
        },
    }
}

fn utf8(args: &[OsString]) -> Result<Vec<String>, UsageError> {
    let mut strings = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match a.to_str() {
            Some(s) => strings.push(s.to_string()),
            None => {
                let msg = format!(
                    "argument {} is not valid UTF-8: {:?}",
                    i + 1,
                    a.to_string_lossy()
                );
                return Err(usage_err(msg, HELP));
            }
        }
    }
    Ok(strings)
}

fn usage_err(msg: impl Into<String>, help: &'static str) -> UsageError {
    UsageError {
        msg: msg.into(),
        help,
    }
}

/// Why a command's parse stopped early: `--help`, or a usage error.
enum Stop {
    Help(&'static str),
    Usage(UsageError),
}

impl From<UsageError> for Stop {
    fn from(e: UsageError) -> Stop {
        Stop::Usage(e)
    }
}

/// One argument of a command, `--json` and `--help` taken out.
enum Arg {
    /// One of the command's options ([`Spec::options`]).
    Opt(&'static str),
    Value(String),
}

/// The arguments of one command: lexopt's parser plus what every command
/// shares (`--json`, `--help`, the messages).
struct Args {
    parser: lexopt::Parser,
    spec: &'static Spec,
    /// The command as typed (`ls` for `list`), for messages.
    typed: String,
    json: bool,
}

impl Args {
    fn new(spec: &'static Spec, typed: &str, rest: &[String]) -> Args {
        Args {
            parser: lexopt::Parser::from_args(rest),
            spec,
            typed: typed.to_string(),
            json: false,
        }
    }

    fn run(mut self) -> Result<Parsed, UsageError> {
        match (self.spec.parse)(&mut self) {
            Ok(cmd) => Ok(Parsed::Run {
                cmd,
                json: self.json,
            }),
            Err(Stop::Help(text)) => Ok(Parsed::Help(text)),
            Err(Stop::Usage(e)) => Err(e),
        }
    }

    fn err(&self, msg: impl Into<String>) -> UsageError {
        usage_err(msg, self.spec.help)
    }

    /// The next argument; options may come before or after the positional
    /// arguments, everything after `--` is positional.
    fn next(&mut self) -> Result<Option<Arg>, Stop> {
        loop {
            let name = match self.parser.next() {
                Ok(None) => return Ok(None),
                Ok(Some(lexopt::Arg::Value(v))) => return Ok(Some(Arg::Value(self.string(v)?))),
                Ok(Some(lexopt::Arg::Long(l))) => format!("--{l}"),
                Ok(Some(lexopt::Arg::Short(c))) => format!("-{c}"),
                Err(e) => return Err(self.lexopt_error(e).into()),
            };
            match name.as_str() {
                "--json" => self.json = true,
                "-h" | "--help" => return Err(Stop::Help(self.spec.help)),
                _ => return self.option(&name).map(|o| Some(Arg::Opt(o))),
            }
        }
    }

    /// `name` as one of the command's options, or the usage error.
    fn option(&self, name: &str) -> Result<&'static str, Stop> {
        if let Some(o) = self.spec.options.iter().find(|o| **o == name) {
            return Ok(o);
        }
        let elsewhere = COMMANDS.iter().any(|s| s.options.contains(&name));
        Err(if elsewhere {
            self.err(format!("option {name} does not apply to {}", self.typed))
        } else {
            self.err(format!("unknown option {name}"))
        }
        .into())
    }

    /// An option of [`Spec::options`] its parser does not handle: a bug,
    /// which `every_listed_option_is_handled` catches.
    fn unhandled(&self, opt: &str) -> Stop {
        self.err(format!(
            "option {opt} is not implemented for {}",
            self.spec.name
        ))
        .into()
    }

    fn lexopt_error(&self, e: lexopt::Error) -> UsageError {
        self.err(match e {
            lexopt::Error::UnexpectedValue { option, value } => format!(
                "{option} takes no value (given {:?})",
                value.to_string_lossy()
            ),
            other => other.to_string(),
        })
    }

    fn string(&self, v: OsString) -> Result<String, UsageError> {
        v.into_string()
            .map_err(|v| self.err(format!("{:?} is not valid UTF-8", v.to_string_lossy())))
    }

    /// The value of option `opt` (`--opt VALUE` or `--opt=VALUE`).
    fn value(&mut self, opt: &str) -> Result<String, UsageError> {
        match self.parser.value() {
            Ok(v) => self.string(v),
            Err(_) => Err(self.err(format!("{opt} needs a value"))),
        }
    }

    /// A path option given at most once, not empty.
    fn path_once(&mut self, slot: &mut Option<PathBuf>, opt: &str) -> Result<(), UsageError> {
        self.once(slot.is_some(), opt)?;
        *slot = Some(self.path(opt)?);
        Ok(())
    }

    fn path(&mut self, opt: &str) -> Result<PathBuf, UsageError> {
        match self.value(opt)? {
            v if v.is_empty() => Err(self.err(format!("{opt} needs a non-empty value"))),
            v => Ok(PathBuf::from(v)),
        }
    }

    fn once(&self, set: bool, opt: &str) -> Result<(), UsageError> {
        if set {
            Err(self.err(format!("{opt} given twice")))
        } else {
            Ok(())
        }
    }

    /// An optional NETWORK: the only positional argument.
    fn network(&self, positional: &[String]) -> Result<Option<String>, UsageError> {
        match positional {
            [] => Ok(None),
            [n] if is_valid_id(n) => Ok(Some(n.clone())),
            [n] => Err(self.err(format!(
                "NETWORK {n:?} is not a valid network name (^[a-zA-Z0-9][a-zA-Z0-9_.-]*$)"
            ))),
            [_, extra, ..] => Err(self.err(format!("unexpected argument {extra:?}"))),
        }
    }

    /// NETWORK, the only positional argument, required.
    fn required_network(&self, positional: &[String]) -> Result<String, UsageError> {
        self.network(positional)?
            .ok_or_else(|| self.err("missing NETWORK"))
    }
}

fn default_data_dir(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

fn parse_list(a: &mut Args) -> Result<Command, Stop> {
    let mut data_dir = None;
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    Ok(Command::List {
        data_dir: default_data_dir(data_dir),
        network: a.network(&positional)?,
    })
}

fn parse_usage(a: &mut Args) -> Result<Command, Stop> {
    let (mut config, mut conf_dir) = (None, None);
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--config") => a.path_once(&mut config, o)?,
            Arg::Opt(o @ "--conf-dir") => a.path_once(&mut conf_dir, o)?,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    if let Some(p) = positional.first() {
        return Err(a.err(format!("unexpected argument {p:?}")).into());
    }
    let source = match (config, conf_dir) {
        (Some(_), Some(_)) => {
            return Err(a.err("--config and --conf-dir exclude each other").into());
        }
        (Some(f), None) => ConfSource::File(f),
        (None, Some(d)) => ConfSource::Dir(d),
        (None, None) => ConfSource::Dir(PathBuf::from(DEFAULT_CONF_DIR)),
    };
    Ok(Command::Usage { source })
}

fn parse_release(a: &mut Args) -> Result<Command, Stop> {
    let (mut data_dir, mut ip, mut container, mut ifname) = (None, None, None, None);
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt(o @ "--ip") => {
                a.once(ip.is_some(), o)?;
                ip = Some(parse_ip(a, o)?);
            }
            Arg::Opt(o @ "--container") => {
                a.once(container.is_some(), o)?;
                container = Some(a.value(o)?);
            }
            Arg::Opt(o @ "--ifname") => {
                a.once(ifname.is_some(), o)?;
                ifname = Some(a.value(o)?);
            }
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    let network = a.required_network(&positional)?;
    let target = release_target(a, ip, container, ifname)?;
    Ok(Command::Release {
        data_dir: default_data_dir(data_dir),
        network,
        target,
    })
}

/// An address; with a prefix too (as `ip addr` prints it), which is ignored.
fn parse_ip(a: &mut Args, opt: &str) -> Result<IpAddr, UsageError> {
    let v = a.value(opt)?;
    let bare = v.split_once('/').map_or(v.as_str(), |(addr, _)| addr);
    bare.parse()
        .map_err(|_| a.err(format!("{opt}: {v:?} is not an IP address")))
}

fn release_target(
    a: &Args,
    ip: Option<IpAddr>,
    container: Option<String>,
    ifname: Option<String>,
) -> Result<ReleaseTarget, UsageError> {
    match (ip, container, ifname) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err(a.err("--ip excludes --container and --ifname"))
        }
        (Some(ip), None, None) => Ok(ReleaseTarget::Ip(ip)),
        (None, Some(id), ifname) => Keep::new(&id, ifname.as_deref())
            .map(ReleaseTarget::Container)
            .map_err(|e| a.err(format!("--container/--ifname: {e}"))),
        (None, None, Some(_)) => Err(a.err("--ifname needs --container")),
        (None, None, None) => Err(a.err("say what to release: --ip IP or --container ID")),
    }
}

fn parse_gc(a: &mut Args) -> Result<Command, Stop> {
    let mut data_dir = None;
    let (mut keep, mut keep_files, mut dry_run) = (Vec::new(), Vec::new(), false);
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt(o @ "--keep") => {
                let v = a.value(o)?;
                keep.push(Keep::parse(&v).map_err(|e| a.err(format!("{o} {v}: {e}")))?);
            }
            Arg::Opt(o @ "--keep-file") => keep_files.push(a.path(o)?),
            Arg::Opt("--dry-run" | "-n") => dry_run = true,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    let network = a.required_network(&positional)?;
    if keep.is_empty() && keep_files.is_empty() {
        return Err(a
            .err(
                "gc needs the live containers: --keep ID[:IFNAME] or --keep-file FILE \
                 (an empty file releases everything)",
            )
            .into());
    }
    Ok(Command::Gc {
        data_dir: default_data_dir(data_dir),
        network,
        keep,
        keep_files,
        dry_run,
    })
}

fn parse_blocks(a: &mut Args) -> Result<Command, Stop> {
    let mut data_dir = None;
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    Ok(Command::Blocks {
        data_dir: default_data_dir(data_dir),
        network: a.required_network(&positional)?,
    })
}

fn parse_release_node(a: &mut Args) -> Result<Command, Stop> {
    let mut data_dir = None;
    let mut force = false;
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt("--force") => force = true,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    let (network, node) = match positional.as_slice() {
        [] => return Err(a.err("missing NETWORK and NODE").into()),
        [_] => return Err(a.err("missing NODE").into()),
        [n, node] => (n.clone(), node.clone()),
        [_, _, extra, ..] => return Err(a.err(format!("unexpected argument {extra:?}")).into()),
    };
    let network = a.required_network(&[network])?;
    if let Some(p) = crate::ipam::cluster::config::node_name_problem(&node) {
        return Err(a.err(format!("NODE {node:?} {p}")).into());
    }
    Ok(Command::ReleaseNode {
        data_dir: default_data_dir(data_dir),
        network,
        node,
        force,
    })
}

fn parse_metrics(a: &mut Args) -> Result<Command, Stop> {
    let (mut data_dir, mut config, mut conf_dir, mut textfile) = (None, None, None, None);
    let mut netns_check = true;
    let mut positional = Vec::new();
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Opt(o @ "--data-dir") => a.path_once(&mut data_dir, o)?,
            Arg::Opt(o @ "--config") => a.path_once(&mut config, o)?,
            Arg::Opt(o @ "--conf-dir") => a.path_once(&mut conf_dir, o)?,
            Arg::Opt(o @ "--textfile") => a.path_once(&mut textfile, o)?,
            Arg::Opt("--no-netns-check") => netns_check = false,
            Arg::Opt(o) => return Err(a.unhandled(o)),
            Arg::Value(v) => positional.push(v),
        }
    }
    if let Some(p) = positional.first() {
        return Err(a.err(format!("unexpected argument {p:?}")).into());
    }
    let (source, explicit) = match (config, conf_dir) {
        (Some(_), Some(_)) => {
            return Err(a.err("--config and --conf-dir exclude each other").into());
        }
        (Some(f), None) => (ConfSource::File(f), true),
        (None, Some(d)) => (ConfSource::Dir(d), true),
        (None, None) => (ConfSource::Dir(PathBuf::from(DEFAULT_CONF_DIR)), false),
    };
    if let Some(t) = &textfile
        && t.file_name().is_none()
    {
        return Err(a
            .err(format!("--textfile {}: not a file name", t.display()))
            .into());
    }
    Ok(Command::Metrics {
        data_dir: default_data_dir(data_dir),
        source,
        explicit,
        textfile,
        netns_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn parsed(s: &str) -> Result<Parsed, UsageError> {
        parse(&os(s))
    }

    fn cmd(s: &str) -> Command {
        match parsed(s) {
            Ok(Parsed::Run { cmd, .. }) => cmd,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn json(s: &str) -> bool {
        matches!(parsed(s), Ok(Parsed::Run { json: true, .. }))
    }

    fn help(s: &str) -> &'static str {
        match parsed(s) {
            Ok(Parsed::Help(text)) => text,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn usage_msg(s: &str) -> String {
        match parsed(s) {
            Err(e) => e.msg,
            Ok(p) => panic!("{s}: parsed as {p:?}"),
        }
    }

    #[test]
    fn parse_list() {
        assert_eq!(
            cmd("list"),
            Command::List {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: None
            }
        );
        assert_eq!(
            cmd("list --data-dir /d net1"),
            Command::List {
                data_dir: "/d".into(),
                network: Some("net1".into())
            }
        );
        assert_eq!(cmd("ls net1 --data-dir=/d"), cmd("list --data-dir /d net1"));
        assert!(json("list --json"));
        assert!(!json("list"));
        assert!(usage_msg("list a b").contains("unexpected argument \"b\""));
        assert!(usage_msg("list ../etc").contains("not a valid network name"));
        assert!(usage_msg("list --data-dir=").contains("non-empty"));
        assert_eq!(
            usage_msg("list --ip 10.0.0.1"),
            "option --ip does not apply to list"
        );
        assert_eq!(usage_msg("ls -n"), "option -n does not apply to ls");
        assert!(usage_msg("list --data-dir /a --data-dir /b").contains("twice"));
    }

    #[test]
    fn parse_usage() {
        assert_eq!(
            cmd("usage"),
            Command::Usage {
                source: ConfSource::Dir(DEFAULT_CONF_DIR.into())
            }
        );
        assert_eq!(
            cmd("usage --config /x.conf"),
            Command::Usage {
                source: ConfSource::File("/x.conf".into())
            }
        );
        assert_eq!(
            cmd("usage --conf-dir /etc/cni/net.d --json"),
            Command::Usage {
                source: ConfSource::Dir("/etc/cni/net.d".into())
            }
        );
        assert!(usage_msg("usage --config a --conf-dir b").contains("exclude"));
        assert!(usage_msg("usage net").contains("unexpected argument"));
        assert!(usage_msg("usage --data-dir /d").contains("does not apply"));
    }

    #[test]
    fn parse_release() {
        let ip = |s: &str| ReleaseTarget::Ip(s.parse().unwrap());
        assert_eq!(
            cmd("release net --ip 10.0.0.5"),
            Command::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ip("10.0.0.5")
            }
        );
        assert_eq!(
            cmd("release net --ip 10.0.0.5/24"),
            cmd("release net --ip 10.0.0.5")
        );
        assert_eq!(
            cmd("release --data-dir /d net --container abc --ifname net1"),
            Command::Release {
                data_dir: "/d".into(),
                network: "net".into(),
                target: ReleaseTarget::Container(Keep::parse("abc:net1").unwrap())
            }
        );
        assert_eq!(
            cmd("release net --ip=fd00::5"),
            Command::Release {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                target: ip("fd00::5")
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
        assert!(usage_msg("release net --ip 10.0.0.5 --ip 10.0.0.6").contains("twice"));
    }

    #[test]
    fn parse_gc() {
        assert_eq!(
            cmd("gc net --keep a --keep b:eth0 --dry-run"),
            Command::Gc {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: "net".into(),
                keep: vec![Keep::parse("a").unwrap(), Keep::parse("b:eth0").unwrap()],
                keep_files: vec![],
                dry_run: true,
            }
        );
        assert_eq!(
            cmd("gc net --keep-file /k --data-dir /d"),
            Command::Gc {
                data_dir: "/d".into(),
                network: "net".into(),
                keep: vec![],
                keep_files: vec!["/k".into()],
                dry_run: false,
            }
        );
        assert_eq!(cmd("gc -n net --keep a"), cmd("gc net --keep a --dry-run"));
        assert!(usage_msg("gc net").contains("--keep"));
        assert!(usage_msg("gc --keep a").contains("missing NETWORK"));
        assert!(usage_msg("gc net --keep a/b").contains("container ID"));
        assert!(usage_msg("gc net --keep a:").contains("interface name"));
        assert!(usage_msg("gc net --keep-file=").contains("non-empty"));
    }

    #[test]
    fn parse_metrics() {
        assert_eq!(
            cmd("metrics"),
            Command::Metrics {
                data_dir: DEFAULT_DATA_DIR.into(),
                source: ConfSource::Dir(DEFAULT_CONF_DIR.into()),
                explicit: false,
                textfile: None,
                netns_check: true,
            }
        );
        assert_eq!(
            cmd("metrics --data-dir /d --conf-dir /c --textfile /t/m.prom --no-netns-check"),
            Command::Metrics {
                data_dir: "/d".into(),
                source: ConfSource::Dir("/c".into()),
                explicit: true,
                textfile: Some("/t/m.prom".into()),
                netns_check: false,
            }
        );
        assert_eq!(
            cmd("metrics --config=/c/x.conf"),
            Command::Metrics {
                data_dir: DEFAULT_DATA_DIR.into(),
                source: ConfSource::File("/c/x.conf".into()),
                explicit: true,
                textfile: None,
                netns_check: true,
            }
        );
        assert!(json("metrics --json"));
        assert!(usage_msg("metrics --config a --conf-dir b").contains("exclude"));
        assert!(usage_msg("metrics net").contains("unexpected argument"));
        assert!(usage_msg("metrics --textfile /").contains("not a file name"));
        assert!(usage_msg("metrics --textfile a --textfile b").contains("twice"));
        assert!(usage_msg("metrics --keep a").contains("does not apply"));
        assert_eq!(
            usage_msg("metrics --no-netns-check=1"),
            "--no-netns-check takes no value (given \"1\")"
        );
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

    #[test]
    fn help_top_level_and_per_command() {
        for s in ["--help", "-h", "help", "help frob", "--help frob"] {
            assert_eq!(help(s), HELP, "{s}");
        }
        for spec in &COMMANDS {
            let n = spec.name;
            for s in [
                format!("{n} --help"),
                format!("{n} -h"),
                format!("help {n}"),
                format!("--help {n}"),
                format!("{n} --json --help"),
                // --help wins over what is still missing or unparsed
                format!("{n} net --help --bogus"),
            ] {
                assert_eq!(help(&s), spec.help, "{s}");
            }
            assert!(spec.help.starts_with(&format!("mactrunk-ipam {n} ")));
            assert!(HELP.contains(&format!("mactrunk-ipam {n} ")), "{n}");
        }
        assert_eq!(help("ls --help"), HELP_LIST);
        assert_eq!(help("gc -nh"), HELP_GC);
        // an error before --help is reported
        assert!(usage_msg("list --bogus --help").contains("unknown option --bogus"));
    }

    #[test]
    fn version() {
        for s in ["--version", "-V", "version", "--version --json"] {
            assert_eq!(parsed(s), Ok(Parsed::Version), "{s}");
        }
        assert_eq!(usage_msg("list --version"), "unknown option --version");
    }

    #[test]
    fn unknown_commands_and_options() {
        let e = parsed("").unwrap_err();
        assert_eq!((e.msg.as_str(), e.help), ("missing command", HELP));
        let e = parsed("frobnicate").unwrap_err();
        assert_eq!(
            (e.msg.as_str(), e.help),
            ("unknown command \"frobnicate\"", HELP)
        );
        assert_eq!(usage_msg("--json list"), "unknown command \"--json\"");
        assert_eq!(usage_msg("list --bogus"), "unknown option --bogus");
        assert_eq!(usage_msg("list --bogus=1"), "unknown option --bogus");
        assert_eq!(usage_msg("list -x"), "unknown option -x");
        assert_eq!(usage_msg("gc net -nx"), "unknown option -x");
        // a usage error carries the command's help
        assert_eq!(parsed("gc net").unwrap_err().help, HELP_GC);
        assert_eq!(parsed("ls --bogus").unwrap_err().help, HELP_LIST);
    }

    #[test]
    fn missing_and_unexpected_values() {
        for (s, opt) in [
            ("list --data-dir", "--data-dir"),
            ("usage --config", "--config"),
            ("usage --conf-dir", "--conf-dir"),
            ("release net --ip", "--ip"),
            ("release net --container", "--container"),
            ("release net --container c --ifname", "--ifname"),
            ("gc net --keep", "--keep"),
            ("gc net --keep a --keep-file", "--keep-file"),
            ("metrics --textfile", "--textfile"),
        ] {
            assert_eq!(usage_msg(s), format!("{opt} needs a value"), "{s}");
        }
        // a value that looks like an option is still the value
        assert_eq!(
            cmd("list --data-dir --json"),
            Command::List {
                data_dir: "--json".into(),
                network: None
            }
        );
        assert_eq!(
            usage_msg("gc net --keep a --dry-run=yes"),
            "--dry-run takes no value (given \"yes\")"
        );
        assert_eq!(
            usage_msg("list --json=false"),
            "--json takes no value (given \"false\")"
        );
    }

    #[test]
    fn double_dash_ends_the_options() {
        assert_eq!(
            cmd("list -- net1"),
            Command::List {
                data_dir: DEFAULT_DATA_DIR.into(),
                network: Some("net1".into())
            }
        );
        assert!(!json("list -- net1"));
        assert!(usage_msg("list -- --json").contains("NETWORK \"--json\" is not a valid"));
        assert!(usage_msg("gc --keep a -- --help").contains("NETWORK \"--help\""));
    }

    #[test]
    fn non_utf8_arguments_are_usage_errors() {
        let raw = |v: &[&[u8]]| -> Vec<OsString> {
            v.iter().map(|b| OsString::from_vec(b.to_vec())).collect()
        };
        let e = parse(&raw(&[b"\xff"])).unwrap_err();
        assert_eq!(e.msg, "argument 1 is not valid UTF-8: \"\u{fffd}\"");
        assert_eq!(e.help, HELP);
        let e = parse(&raw(&[b"list", b"--data-dir", b"/x\xfe"])).unwrap_err();
        assert!(
            e.msg.starts_with("argument 3 is not valid UTF-8"),
            "{}",
            e.msg
        );
        let e = parse(&raw(&[b"gc", b"net", b"--keep", b"a", b"--", b"\xff"])).unwrap_err();
        assert!(
            e.msg.starts_with("argument 6 is not valid UTF-8"),
            "{}",
            e.msg
        );
    }

    /// The option table and the parsers agree: every listed option is
    /// handled by its command and named in its help.
    #[test]
    fn every_listed_option_is_handled() {
        for spec in &COMMANDS {
            for opt in spec.options {
                let line = format!("{} {opt}", spec.name);
                if let Err(e) = parsed(&line) {
                    assert!(
                        !e.msg.contains("not implemented")
                            && !e.msg.contains("does not apply")
                            && !e.msg.contains("unknown option"),
                        "{line}: {}",
                        e.msg
                    );
                }
                if opt.starts_with("--") {
                    assert!(
                        spec.help.contains(opt),
                        "{opt} not in the help of {}",
                        spec.name
                    );
                }
            }
        }
    }
}
