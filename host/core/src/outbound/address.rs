//! Which IP addresses outbound requests may reach: public unicast only, unless the
//! operator allows private ranges (`http_allow_private`) or lists networks
//! (`http_allow_networks`). Embedded IPv4 addresses (IPv4-mapped, 6to4) are judged
//! as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused, or `None` when it is public unicast.
pub fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// A non-public kind of address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `0.0.0.0/8`, `::` — on Linux a connection to it reaches the host itself.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, carrier-grade NAT (`100.64.0.0/10`), IPv6 unique local (`fc00::/7`).
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `255.255.255.255`, `ff00::/8`.
    Multicast,
    /// Documentation, benchmarking, reserved and other special-purpose ranges.
    Reserved,
}

impl Class {
    /// A phrase for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Unspecified => "an unspecified address",
            Class::Loopback => "a loopback address",
            Class::Private => "a private address",
            Class::LinkLocal => "a link-local address",
            Class::Multicast => "a multicast or broadcast address",
            Class::Reserved => "a reserved address",
        }
    }

    /// Whether `http_allow_private` lifts the ban. Unspecified, multicast and
    /// reserved addresses are never useful HTTP peers and stay refused unless a
    /// listed network names them.
    fn private_like(self) -> bool {
        matches!(self, Class::Loopback | Class::Private | Class::LinkLocal)
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Class::Unspecified,
        (127, _, _) => Class::Loopback,
        (10, _, _) | (192, 168, _) => Class::Private,
        (172, 16..=31, _) | (100, 64..=127, _) => Class::Private,
        (169, 254, _) => Class::LinkLocal,
        (224..=239, _, _) => Class::Multicast,
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => Class::Multicast,
        // 192.0.0.0/24 protocol assignments, documentation nets, 198.18.0.0/15
        // benchmarking, 240.0.0.0/4 reserved.
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) | (240..=255, _, _) => {
            Class::Reserved
        }
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Class::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    Some(match s[0] {
        0xfc00..=0xfdff => Class::Private,
        0xfe80..=0xfebf => Class::LinkLocal,
        // Deprecated site-local.
        0xfec0..=0xfeff => Class::Private,
        0xff00..=0xffff => Class::Multicast,
        // 6to4 carries an IPv4 address in segments 1–2: judge that.
        0x2002 => {
            let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
            return classify_v4(v4);
        }
        // Teredo (2001:0::/32) tunnels to arbitrary IPv4; documentation 2001:db8::/32.
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => Class::Reserved,
        // Global unicast is 2000::/3; everything else (IPv4-compatible ::/96, NAT64
        // 64:ff9b::/96, discard-only, ORCHID…) is special-purpose.
        0x2000..=0x3fff => return None,
        _ => Class::Reserved,
    })
}

/// The operator's exceptions to the address rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressRules {
    /// Allow loopback, private and link-local addresses.
    pub allow_private: bool,
    /// Networks allowed whatever their kind.
    pub allow_networks: Vec<IpNet>,
}

impl AddressRules {
    /// `Err(reason)` when `ip` may not be reached.
    pub fn check(&self, ip: IpAddr) -> Result<(), Class> {
        let ip = canonical(ip);
        if self.allow_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(class) if self.allow_private && class.private_like() => Ok(()),
            Some(class) => Err(class),
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are (so `127.0.0.2/32` in an
/// allow-list also covers `::ffff:127.0.0.2`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(classify(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn special_addresses_are_refused() {
        let cases = [
            ("127.0.0.1", Class::Loopback),
            ("127.255.0.9", Class::Loopback),
            ("0.0.0.0", Class::Unspecified),
            ("10.1.2.3", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("169.254.169.254", Class::LinkLocal),
            ("224.0.0.1", Class::Multicast),
            ("255.255.255.255", Class::Multicast),
            ("240.0.0.1", Class::Reserved),
            ("192.0.2.10", Class::Reserved),
            ("::", Class::Unspecified),
            ("::1", Class::Loopback),
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:10.0.0.1", Class::Private),
            ("::ffff:169.254.169.254", Class::LinkLocal),
            ("fd00::1", Class::Private),
            ("fe80::1", Class::LinkLocal),
            ("ff02::1", Class::Multicast),
            ("2002:7f00:1::", Class::Loopback),
            ("2001:db8::1", Class::Reserved),
            ("2001:0:4136:e378::1", Class::Reserved),
            ("64:ff9b::7f00:1", Class::Reserved),
            ("::127.0.0.1", Class::Reserved),
        ];
        for (a, class) in cases {
            assert_eq!(classify(ip(a)), Some(class), "{a}");
        }
        assert_eq!(classify(ip("172.32.0.1")), None);
        assert_eq!(classify(ip("100.128.0.1")), None);
    }

    #[test]
    fn operator_exceptions() {
        let strict = AddressRules::default();
        assert!(strict.check(ip("127.0.0.1")).is_err());
        let private = AddressRules {
            allow_private: true,
            allow_networks: vec![],
        };
        assert!(private.check(ip("127.0.0.1")).is_ok());
        assert!(private.check(ip("10.0.0.1")).is_ok());
        assert!(private.check(ip("0.0.0.0")).is_err(), "unspecified stays refused");
        assert!(private.check(ip("224.0.0.1")).is_err());
        let listed = AddressRules {
            allow_private: false,
            allow_networks: vec!["127.0.0.2/32".parse().unwrap()],
        };
        assert!(listed.check(ip("127.0.0.2")).is_ok());
        assert!(listed.check(ip("::ffff:127.0.0.2")).is_ok());
        assert_eq!(listed.check(ip("127.0.0.1")), Err(Class::Loopback));
    }
}
