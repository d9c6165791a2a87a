//! Address ranges for the wrapper service's allowlist: `10.0.0.0/8`, `::1`, `fd00::/8`.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why a text is no range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    NotAnAddress {
        text: String,
    },
    /// The prefix length is not a number from 0 to `max`.
    BadPrefix {
        text: String,
        max: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress { text } => write!(
                f,
                "{text:?} is not an address or range like 10.0.0.0/8 or ::1"
            ),
            CidrError::BadPrefix { text, max } => {
                write!(f, "{text:?}: prefix length must be 0 to {max}")
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// An address and a prefix length; a bare address is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::NotAnAddress {
            text: text.to_string(),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bad_prefix = || CidrError::BadPrefix {
            text: text.to_string(),
            max,
        };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad_prefix)?,
        };
        // `::ffff:10.0.0.1` is how an IPv6 socket writes the IPv4 address 10.0.0.1: kept as
        // written it would be a range of IPv6 addresses no peer ever has, so it is stored
        // (and shown) as the IPv4 range it means.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= MAPPED_PREFIX
        {
            return Ok(Cidr {
                addr: IpAddr::V4(v4),
                prefix: prefix - MAPPED_PREFIX,
            });
        }
        Ok(Cidr { addr, prefix })
    }

    /// Compared as IPv6, IPv4 as its mapped form `::ffff:a.b.c.d`: IPv4 clients of an IPv6
    /// listener (which arrive mapped) match IPv4 ranges, and a peer matches a range however
    /// either is written. `::/0` is every address, IPv4 ones included.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, prefix) = match self.addr {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped(), self.prefix + MAPPED_PREFIX),
            IpAddr::V6(v6) => (v6, self.prefix),
        };
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        masked(u128::from(net), prefix) == masked(u128::from(ip), prefix)
    }
}

/// The length of the `::ffff:0:0/96` prefix that IPv4-mapped IPv6 addresses share.
const MAPPED_PREFIX: u8 = 96;

fn masked(bits: u128, prefix: u8) -> u128 {
    bits.checked_shr(u32::from(128 - prefix)).unwrap_or(0)
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(text: String) -> Result<Cidr, CidrError> {
        Cidr::parse(&text)
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` may connect: an empty allowlist lets everybody in.
pub fn allowed(list: &[Cidr], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|cidr| cidr.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));
        assert!(!one.contains(ip("127.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
    }

    #[test]
    fn ipv4_mapped_entries_mean_their_ipv4_range() {
        let one = Cidr::parse("::ffff:127.0.0.1").unwrap();
        assert_eq!(one, Cidr::parse("127.0.0.1").unwrap());
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(one.contains(ip("::ffff:127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let net = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.9.9.9")) && !net.contains(ip("11.0.0.1")));
        assert_eq!(
            Cidr::parse("::ffff:0:0/96").unwrap().to_string(),
            "0.0.0.0/0"
        );
        // A range wider than the mapped block stays IPv6, and still covers IPv4 peers.
        let all = Cidr::parse("::/0").unwrap();
        assert!(all.contains(ip("192.0.2.1")) && all.contains(ip("2001:db8::1")));
        assert!(
            !Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("192.0.2.1"))
        );
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(allowed(&[one], ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_ranges_are_rejected() {
        assert!(
            Cidr::parse("10.0.0.0/33")
                .unwrap_err()
                .to_string()
                .contains("0 to 32")
        );
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("example.com").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn empty_list_allows_all() {
        assert!(allowed(&[], ip("192.0.2.1")));
        let list = [Cidr::parse("127.0.0.0/8").unwrap()];
        assert!(allowed(&list, ip("127.0.0.1")));
        assert!(!allowed(&list, ip("192.0.2.1")));
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
    }
}
