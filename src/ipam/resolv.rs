//! A resolv.conf reader for `ipam.resolvConf` (nameserver, domain, search,
//! options), as the reference host-local parses it.

use std::io;
use std::path::Path;

use crate::cni::Dns;

pub fn read(path: &Path) -> Result<Dns, io::Error> {
    use std::io::Read;
    let mut content = String::new();
    std::fs::File::open(path)?
        .take(1 << 20)
        .read_to_string(&mut content)?;
    Ok(parse(&content))
}

pub fn parse(content: &str) -> Dns {
    let mut dns = Dns::default();
    for line in content.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let rest: Vec<String> = fields.map(str::to_string).collect();
        match key {
            "nameserver" => dns.nameservers.extend(rest.into_iter().take(1)),
            "domain" => {
                if let Some(d) = rest.into_iter().next() {
                    dns.domain = Some(d);
                }
            }
            "search" => dns.search = rest,
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_keys() {
        let d = parse(
            "# comment\nnameserver 10.0.0.53\nnameserver fd00::53 # trailing\n; other comment\n\
             domain example.com\nsearch a.example b.example\nsearch c.example d.example\n\
             options ndots:2 edns0\noptions rotate\nsortlist 10.0.0.0\n  \nnameserver\n",
        );
        assert_eq!(d.nameservers, ["10.0.0.53", "fd00::53"]);
        assert_eq!(d.domain.as_deref(), Some("example.com"));
        assert_eq!(d.search, ["c.example", "d.example"]);
        assert_eq!(d.options, ["ndots:2", "edns0", "rotate"]);
        assert!(parse("").is_empty());
    }
}
