//! A custom HTTP source's URL taken apart: `http://HOST[:PORT]/PATH?QUERY`, HOST an IPv4
//! address, an `[IPv6]` one or a name; what the request line and `Host` header carry.

/// Where a GET goes and what it asks for.
#[derive(Debug, PartialEq)]
pub struct Target<'a> {
    /// `HOST[:PORT]` as written: the `Host` header, and the name in messages.
    pub authority: &'a str,
    /// The host to resolve: a name or an address, without an IPv6 address's brackets.
    pub host: &'a str,
    pub port: u16,
    /// The request target: the path and query, `/` when the URL has neither.
    pub path: String,
}

pub fn parse(url: &str) -> Result<Target<'_>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("not a plain http:// URL")?;
    // Anything at or below a space would end the request line or a header early.
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the URL has a space or control character".into());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("user info in the URL".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("no ] after an IPv6 address")?;
            match after {
                "" => (host, None),
                after => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or("text after an IPv6 address's ]")?,
                    ),
                ),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    if host.contains(':') && !authority.starts_with('[') {
        return Err("an IPv6 address must be in [ ]".into());
    }
    let port = match port {
        None | Some("") => 80,
        Some(port) => Some(port)
            .filter(|port| port.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|&port| port != 0)
            .ok_or_else(|| format!("bad port {port:?}"))?,
    };
    let path = tail.split('#').next().unwrap_or_default();
    let path = match path.strip_prefix('/') {
        Some(_) => path.to_string(),
        None => format!("/{path}"),
    };
    Ok(Target {
        authority,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (&str, &str, u16, String) {
        let t = parse(url).unwrap();
        (t.authority, t.host, t.port, t.path)
    }

    #[test]
    fn hosts_ports_and_paths() {
        assert_eq!(
            target("http://127.0.0.1:8080/load?x=1"),
            ("127.0.0.1:8080", "127.0.0.1", 8080, "/load?x=1".into())
        );
        assert_eq!(target("http://h"), ("h", "h", 80, "/".into()));
        assert_eq!(target("http://h:/"), ("h:", "h", 80, "/".into()));
        assert_eq!(target("http://h?q"), ("h", "h", 80, "/?q".into()));
        assert_eq!(target("http://h/a#frag"), ("h", "h", 80, "/a".into()));
        assert_eq!(target("http://h#frag"), ("h", "h", 80, "/".into()));
        assert_eq!(
            target("http://[::1]:9/m"),
            ("[::1]:9", "::1", 9, "/m".into())
        );
        assert_eq!(target("http://[::1]"), ("[::1]", "::1", 80, "/".into()));
        assert_eq!(
            target("http://metrics.example:65535/"),
            (
                "metrics.example:65535",
                "metrics.example",
                65535,
                "/".into()
            )
        );
    }

    #[test]
    fn what_is_refused_and_why() {
        let err = |url: &str| parse(url).unwrap_err();
        assert_eq!(err("https://h/"), "not a plain http:// URL");
        assert_eq!(err("http:///x"), "no host in the URL");
        assert_eq!(err("http://:80/"), "no host in the URL");
        assert_eq!(err("http://[]/"), "no host in the URL");
        assert_eq!(err("http://u:p@h/"), "user info in the URL");
        assert_eq!(
            err("http://h/a b"),
            "the URL has a space or control character"
        );
        assert_eq!(
            err("http://h/\r\nX: y"),
            "the URL has a space or control character"
        );
        assert_eq!(err("http://[::1/"), "no ] after an IPv6 address");
        assert_eq!(err("http://[::1]x/"), "text after an IPv6 address's ]");
        assert_eq!(err("http://::1/"), "an IPv6 address must be in [ ]");
        assert_eq!(err("http://h:a:b/"), "an IPv6 address must be in [ ]");
        for port in ["0", "65536", "+80", "-1", "8o", "99999999999999999999"] {
            assert_eq!(
                err(&format!("http://h:{port}/")),
                format!("bad port {port:?}")
            );
        }
    }

    #[test]
    fn no_panic_on_any_prefix_or_odd_text() {
        let url = "http://[fe80::1]:8080/a/b?c=d#e";
        for end in 0..=url.len() {
            let _ = parse(&url[..end]);
        }
        for odd in [
            "http://[",
            "http://]",
            "http://[]:",
            "http://:",
            "http://é:1/é",
            "http://h:١/",
        ] {
            let _ = parse(odd);
        }
    }
}
