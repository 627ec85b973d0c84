//! The bridge's safe defaults in one place: the session token, the Host and Origin checks that
//! stop DNS rebinding and cross-site pages, and the address policy that keeps servers and
//! clients on loopback unless the LAN was allowed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shared::{ErrorInfo, ErrorKind, Scope};

/// The per-run secret every WebSocket session must present in its hello.
#[derive(Clone)]
pub struct Token(String);

/// Shortest token `--token` accepts: a guessable token would make the check pointless.
pub const MIN_TOKEN_LEN: usize = 16;

impl Token {
    /// 256 random bits from the OS, as hex.
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token given on the command line, refused if too short to be a secret.
    pub fn fixed(text: &str) -> Result<Token, String> {
        if text.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "--token must be at least {MIN_TOKEN_LEN} characters long"
            ));
        }
        Ok(Token(text.to_string()))
    }

    /// The secret itself: for the printed URL only, never for a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time that does not depend on where the first difference is.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Never shows the secret.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Whether a request's Host header names this bridge. Host names other than `localhost` are
/// refused: a DNS-rebinding page reaches the bridge under its own domain name, so only IP
/// literals (which no attacker's DNS controls) and `localhost` are accepted. A port, when
/// given, must be the bridge's own; `trunk serve`'s proxy sends the bare host (`127.0.0.1`).
/// IP literals must be loopback unless the bridge listens beyond loopback.
pub(crate) fn host_allowed(host: &str, listen: SocketAddr) -> bool {
    let (name, port) = split_host_port(host);
    if port.is_some_and(|p| p != listen.port()) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => true,
        Ok(ip) => !listen.ip().is_loopback() && (listen.ip().is_unspecified() || ip == listen.ip()),
        Err(_) => false,
    }
}

/// Splits `name:port`, `[v6]:port`, `name` or `[v6]`; a port that is not a number is kept as
/// port 0, which matches no bridge.
fn split_host_port(host: &str) -> (&str, Option<u16>) {
    let port_of = |p: &str| Some(p.parse().unwrap_or(0));
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, after)) => (name, after.strip_prefix(':').and_then(port_of)),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port_of(port)),
        _ => (host, None),
    }
}

/// The origins allowed by default: the bridge's own (it serves the page) and `trunk serve`'s
/// default, for the development loop.
pub(crate) fn default_origins(listen: SocketAddr) -> Vec<String> {
    let port = listen.port();
    let mut origins = vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        "http://127.0.0.1:8080".to_string(),
        "http://localhost:8080".to_string(),
    ];
    if !listen.ip().is_loopback() && !listen.ip().is_unspecified() {
        origins.push(format!("http://{listen}"));
    }
    origins
}

/// Whether a WebSocket upgrade's Origin is on the exact allowlist. A request without an Origin
/// does not come from a web page (browsers always send one on WebSocket upgrades), so it cannot
/// be a cross-site attack; it still needs the token.
pub(crate) fn origin_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(origin) => allowed.iter().any(|a| a == origin),
    }
}

/// Why an address is wanted: servers may bind the unspecified address (all interfaces) when
/// the LAN is allowed; nobody connects to it. A fetch is one GET made by the person holding
/// the token, as their own browser would: it may reach public addresses by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Bind,
    Connect,
    Fetch,
}

/// Where endpoints and fetches may go: the address scope (`--allow-lan`), whether clients may
/// connect to public addresses (`--allow-internet`), and names pointed at other addresses for
/// this run (`--resolve NAME:PORT:ADDRESS`, meant for tests and offline classrooms).
#[derive(Debug, Clone)]
pub struct Reach {
    pub scope: Scope,
    pub internet: bool,
    pub names: Vec<(String, u16, SocketAddr)>,
}

impl Reach {
    /// Only the scope: no public addresses for clients, no names pointed elsewhere.
    pub fn new(scope: Scope) -> Reach {
        Reach {
            scope,
            internet: false,
            names: Vec::new(),
        }
    }

    /// Where `--resolve` points `host:port`, if it does.
    fn pointed(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.names
            .iter()
            .find(|(name, p, _)| *p == port && name.eq_ignore_ascii_case(host))
            .map(|(_, _, to)| *to)
    }
}

/// Parses `--resolve NAME:PORT:ADDRESS` (ADDRESS with or without a port of its own: the
/// connection then goes there, as curl's `--connect-to` does).
pub fn parse_resolve(text: &str) -> Result<(String, u16, SocketAddr), String> {
    let bad =
        || format!("'{text}' is not NAME:PORT:ADDRESS, such as api.open-meteo.com:443:127.0.0.1");
    let (name, rest) = text.split_once(':').ok_or_else(bad)?;
    let (port, address) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let address = address.trim_start_matches('[');
    let to = match address.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => address
            .replacen(']', "", 1)
            .parse::<SocketAddr>()
            .or_else(|_| format!("[{address}").parse::<SocketAddr>())
            .map_err(|_| bad())?,
    };
    if name.is_empty() || !is_host_name(name) {
        return Err(bad());
    }
    Ok((name.to_ascii_lowercase(), port, to))
}

/// Addresses that are never reached, whatever the flags: link-local ones (the cloud metadata
/// services live at 169.254.169.254 and fe80::, and hand out credentials) and the metadata
/// addresses outside that range.
fn never(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    == "fd00:ec2::254"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("an address")
        }
    }
}

/// The IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address: it is judged
/// as that address, where it leads.
fn embedded_v4(ip: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let v4 =
        |hi: u16, lo: u16| IpAddr::from([(hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8]);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    (s[0] == 0x2002).then(|| v4(s[1], s[2]))
}

/// A public unicast address: one of the internet's, none of the special ranges (private,
/// shared, documentation, benchmarking, reserved, Teredo).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] == 0))
        }
    }
}

/// Whether the policy lets an endpoint (or a fetch) use this address.
pub(crate) fn check_ip(ip: IpAddr, reach: &Reach, purpose: Purpose) -> Result<(), ErrorInfo> {
    let ip = ip.to_canonical();
    if let Some(inside) = embedded_v4(ip) {
        return check_ip(inside, reach, purpose);
    }
    if ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!("{ip} is a broadcast or multicast address, which the playground does not use."),
        )
        .with_hint("Use the address of one machine, such as 127.0.0.1."));
    }
    if ip.is_unspecified() {
        return match (purpose, reach.scope) {
            (Purpose::Bind, Scope::Lan) => Ok(()),
            (Purpose::Bind, Scope::Loopback) => Err(ErrorInfo::new(
                ErrorKind::NotAllowed,
                format!(
                    "Binding to {ip} (all interfaces) would let other machines reach this server, \
                     and the bridge only allows loopback addresses."
                ),
            )
            .with_hint(
                "Bind to 127.0.0.1, or restart the bridge with --allow-lan to serve other machines.",
            )),
            (_, _) => Err(ErrorInfo::new(
                ErrorKind::NotAllowed,
                format!("{ip} is not the address of a machine, so there is nothing to connect to."),
            )
            .with_hint("Connect to 127.0.0.1 for a server on this machine.")),
        };
    }
    if ip.is_loopback() {
        return Ok(());
    }
    if never(ip) {
        return Err(ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!(
                "{ip} is a link-local or cloud metadata address, which the bridge never reaches \
                 (on a cloud machine it hands out the machine's credentials)."
            ),
        )
        .with_hint("Use the address of a machine, such as 127.0.0.1."));
    }
    if is_lan(ip) {
        if reach.scope == Scope::Lan {
            return Ok(());
        }
        return Err(ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!(
                "The bridge only opens sockets on this machine's loopback addresses \
                 (127.0.0.1, ::1), and {ip} is not one: it is on a local network."
            ),
        )
        .with_hint(
            "Restart the bridge with --allow-lan to reach other machines on your network.",
        ));
    }
    if is_public(ip) {
        return match purpose {
            Purpose::Fetch => Ok(()),
            Purpose::Connect if reach.internet => Ok(()),
            Purpose::Connect => Err(ErrorInfo::new(
                ErrorKind::NotAllowed,
                format!(
                    "{ip} is an address on the internet, and the bridge's clients only reach \
                     this machine{}.",
                    if reach.scope == Scope::Lan {
                        " and your network"
                    } else {
                        ""
                    }
                ),
            )
            .with_hint(
                "Restart the bridge with --allow-internet to let clients reach the internet \
                 (fetch_send may already).",
            )),
            Purpose::Bind => Err(ErrorInfo::new(
                ErrorKind::NotAllowed,
                format!("{ip} is not an address of this machine a server could bind."),
            )
            .with_hint("Bind to 127.0.0.1, or with --allow-lan to this machine's LAN address.")),
        };
    }
    Err(ErrorInfo::new(
        ErrorKind::NotAllowed,
        format!("{ip} is in a special range (documentation, shared or reserved), not a machine the playground reaches."),
    )
    .with_hint("Use the address of a machine, such as 127.0.0.1."))
}

/// Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7). Link-local addresses are not
/// among them: 169.254.169.254 is the cloud metadata service, which hands out credentials.
fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// How long a name lookup may take before it counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host` and returns the first address the policy allows. The check applies to the
/// resolved IP, so a name that points somewhere else is refused like the address itself.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    reach: &Reach,
    purpose: Purpose,
) -> Result<SocketAddr, ErrorInfo> {
    Ok(resolve_all(host, port, reach, purpose).await?[0])
}

/// Every address `host` resolves to that the policy allows, in the resolver's order and
/// without repeats (never empty): a client tries each in turn, as Python's
/// `socket.create_connection` does (`localhost` is both ::1 and 127.0.0.1).
pub(crate) async fn resolve_all(
    host: &str,
    port: u16,
    reach: &Reach,
    purpose: Purpose,
) -> Result<Vec<SocketAddr>, ErrorInfo> {
    let trimmed = host.trim();
    let literal = trimmed.trim_start_matches('[').trim_end_matches(']');
    if trimmed.is_empty() && purpose == Purpose::Bind {
        // Python's `bind(('', port))`: all interfaces.
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        check_ip(addr.ip(), reach, purpose)?;
        return Ok(vec![addr]);
    }
    if let Some(to) = reach.pointed(literal, port) {
        check_ip(to.ip(), reach, purpose)?;
        return Ok(vec![to]);
    }
    if let Ok(ip) = literal.parse::<IpAddr>() {
        check_ip(ip, reach, purpose)?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let failed = |detail: String| {
        let hint = match purpose {
            // A fetch names a server elsewhere: a lookup also fails when this machine is offline.
            Purpose::Fetch => {
                "Check the spelling of the URL's host, and that this machine is on \
                               the internet (the lookup needs a DNS server)."
            }
            _ => "Check the spelling; use 127.0.0.1 (or localhost) for this machine.",
        };
        ErrorInfo::new(
            ErrorKind::NameResolutionFailed,
            format!("Could not find the address of '{trimmed}': {detail}."),
        )
        .with_hint(hint)
    };
    if trimmed.is_empty() {
        return Err(failed("no host name was given".into()));
    }
    if !is_host_name(trimmed) {
        return Err(failed("that is not a valid host name".into()));
    }
    // RFC 6761: names under .invalid never exist; no need to ask a DNS server.
    if trimmed
        .to_ascii_lowercase()
        .trim_end_matches('.')
        .ends_with(".invalid")
    {
        return Err(failed("names ending in .invalid never exist".into()));
    }
    let found: Vec<SocketAddr> =
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((trimmed, port))).await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed("the lookup took too long".into())),
        };
    let mut found = found;
    // RFC 6761: localhost is this machine, on both stacks, whatever the hosts file lists (on
    // many systems only 127.0.0.1): a server on ::1 is as local as one on 127.0.0.1.
    let lower = trimmed.to_ascii_lowercase();
    let lower = lower.trim_end_matches('.');
    if lower == "localhost" || lower.ends_with(".localhost") {
        for ip in [
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            IpAddr::from([127, 0, 0, 1]),
        ] {
            if !found.iter().any(|a| a.ip() == ip) {
                found.push(SocketAddr::new(ip, port));
            }
        }
    }
    let mut allowed: Vec<SocketAddr> = Vec::new();
    for addr in &found {
        if !allowed.contains(addr) && check_ip(addr.ip(), reach, purpose).is_ok() {
            allowed.push(*addr);
        }
    }
    if allowed.is_empty() {
        // Say why the first one was refused.
        return first_allowed(&found, reach, purpose)
            .unwrap_or_else(|| Err(failed("the name has no addresses".into())))
            .map(|addr| vec![addr]);
    }
    Ok(allowed)
}

/// The first resolved address the policy allows, else the refusal of the first one; None for
/// no addresses. Every address a name gives is judged, never the name.
fn first_allowed(
    found: &[SocketAddr],
    reach: &Reach,
    purpose: Purpose,
) -> Option<Result<SocketAddr, ErrorInfo>> {
    let mut refusal = None;
    for addr in found {
        match check_ip(addr.ip(), reach, purpose) {
            Ok(()) => return Some(Ok(*addr)),
            Err(e) => refusal = refusal.or(Some(e)),
        }
    }
    refusal.map(Err)
}

/// Letters, digits and hyphens in dot-separated labels of 1 to 63 characters: anything else
/// is refused before a resolver (or a DNS server) ever sees it.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Makes the folder `path` (not its parents) so that only this user can enter it: mode 0700 on
/// Unix, where others could otherwise put code or read tokens there; on Windows a new folder
/// under the user's own profile or temporary folder is already theirs alone.
pub(crate) fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(path);
    #[cfg(not(unix))]
    return std::fs::DirBuilder::new().create(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:7777".parse().unwrap()
    }

    #[test]
    fn host_must_be_the_bridge_itself() {
        assert!(host_allowed("127.0.0.1:7777", loopback()));
        assert!(host_allowed("localhost:7777", loopback()));
        assert!(host_allowed("[::1]:7777", loopback()));
        assert!(!host_allowed("127.0.0.1:8080", loopback()));
        assert!(!host_allowed("evil.example:7777", loopback()));
        assert!(!host_allowed("192.168.1.5:7777", loopback()));
        assert!(!host_allowed("127.0.0.1:x", loopback()));
        // trunk serve's proxy sends the bare host; names still need to be the bridge's own.
        assert!(host_allowed("127.0.0.1", loopback()));
        assert!(host_allowed("localhost", loopback()));
        assert!(!host_allowed("evil.example", loopback()));
        assert!(!host_allowed("[::2]:7777", loopback()));
        let lan: SocketAddr = "192.168.1.5:7777".parse().unwrap();
        assert!(host_allowed("192.168.1.5:7777", lan));
        assert!(!host_allowed("rebind.example:7777", lan));
    }

    #[test]
    fn origin_allowlist_is_exact() {
        let allowed = default_origins(loopback());
        assert!(origin_allowed(Some("http://127.0.0.1:7777"), &allowed));
        assert!(origin_allowed(Some("http://localhost:8080"), &allowed));
        assert!(!origin_allowed(Some("http://127.0.0.1:77770"), &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), &allowed));
        assert!(!origin_allowed(Some("null"), &allowed));
        assert!(origin_allowed(None, &allowed));
    }

    #[test]
    fn token_compare_and_debug() {
        let token = Token::generate().unwrap();
        assert_eq!(token.expose().len(), 64);
        assert!(token.matches(token.expose()));
        assert!(!token.matches("nope"));
        assert!(!format!("{token:?}").contains(token.expose()));
        assert!(Token::fixed("short").is_err());
    }

    #[test]
    fn address_policy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        use Purpose::*;
        assert!(check_ip(ip("127.0.0.1"), &Reach::new(Scope::Loopback), Connect).is_ok());
        assert!(check_ip(ip("127.3.4.5"), &Reach::new(Scope::Loopback), Connect).is_ok());
        assert!(check_ip(
            ip("::ffff:127.0.0.1"),
            &Reach::new(Scope::Loopback),
            Connect
        )
        .is_ok());
        assert!(check_ip(ip("::1"), &Reach::new(Scope::Loopback), Bind).is_ok());
        assert!(check_ip(ip("192.168.1.5"), &Reach::new(Scope::Loopback), Connect).is_err());
        assert!(check_ip(ip("192.168.1.5"), &Reach::new(Scope::Lan), Connect).is_ok());
        assert!(check_ip(ip("8.8.8.8"), &Reach::new(Scope::Lan), Connect).is_err());
        assert!(check_ip(ip("0.0.0.0"), &Reach::new(Scope::Loopback), Bind).is_err());
        assert!(check_ip(ip("0.0.0.0"), &Reach::new(Scope::Lan), Bind).is_ok());
        assert!(check_ip(ip("0.0.0.0"), &Reach::new(Scope::Lan), Connect).is_err());
        assert!(check_ip(ip("224.0.0.1"), &Reach::new(Scope::Lan), Connect).is_err());
        assert!(check_ip(ip("ff02::1"), &Reach::new(Scope::Lan), Connect).is_err());
        assert!(check_ip(ip("255.255.255.255"), &Reach::new(Scope::Lan), Connect).is_err());
        // Link-local, even on a LAN: the metadata service of cloud machines lives there.
        assert!(check_ip(ip("169.254.169.254"), &Reach::new(Scope::Lan), Connect).is_err());
        assert!(check_ip(ip("fe80::1"), &Reach::new(Scope::Lan), Connect).is_err());
        // IPv4-mapped IPv6 is judged as the IPv4 address inside.
        assert!(check_ip(
            ip("::ffff:169.254.169.254"),
            &Reach::new(Scope::Lan),
            Connect
        )
        .is_err());
        assert!(check_ip(ip("::ffff:10.0.0.1"), &Reach::new(Scope::Loopback), Connect).is_err());
        assert!(check_ip(ip("::ffff:10.0.0.1"), &Reach::new(Scope::Lan), Connect).is_ok());
        assert!(check_ip(ip("::ffff:224.0.0.1"), &Reach::new(Scope::Lan), Connect).is_err());
        let err = check_ip(ip("10.0.0.1"), &Reach::new(Scope::Loopback), Connect).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotAllowed);
        assert!(err.hint.unwrap().contains("--allow-lan"));
    }

    #[test]
    fn fetches_reach_the_internet_and_clients_only_when_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        use Purpose::*;
        let loopback = Reach::new(Scope::Loopback);
        let internet = Reach {
            internet: true,
            ..Reach::new(Scope::Loopback)
        };
        // A public address: fetched by default, connected to only with --allow-internet.
        for public in [
            "93.184.215.14",
            "2606:4700::6810:84e5",
            "::ffff:93.184.215.14",
        ] {
            assert!(check_ip(ip(public), &loopback, Fetch).is_ok(), "{public}");
            let refused = check_ip(ip(public), &loopback, Connect).unwrap_err();
            assert!(
                refused.hint.unwrap().contains("--allow-internet"),
                "{public}"
            );
            assert!(check_ip(ip(public), &internet, Connect).is_ok(), "{public}");
            assert!(check_ip(ip(public), &internet, Bind).is_err(), "{public}");
        }
        // Private ranges only with --allow-lan, for fetches too.
        assert!(check_ip(ip("192.168.1.5"), &internet, Fetch).is_err());
        assert!(check_ip(ip("192.168.1.5"), &Reach::new(Scope::Lan), Fetch).is_ok());
        // Link-local and the metadata addresses never, in every spelling a resolver or a URL
        // gives them (the numeric spellings are resolved first, see below).
        let anything = Reach {
            internet: true,
            ..Reach::new(Scope::Lan)
        };
        for never in [
            "169.254.169.254",
            "169.254.0.1",
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            for purpose in [Fetch, Connect, Bind] {
                assert!(check_ip(ip(never), &anything, purpose).is_err(), "{never}");
            }
        }
        // Special ranges are no machine on the internet.
        for special in [
            "192.0.2.1",
            "100.64.0.1",
            "240.0.0.1",
            "2001:db8::1",
            "198.18.0.1",
        ] {
            assert!(
                check_ip(ip(special), &anything, Fetch).is_err(),
                "{special}"
            );
        }
    }

    #[test]
    fn names_can_be_pointed_elsewhere_for_a_run() {
        assert_eq!(
            parse_resolve("api.open-meteo.com:443:127.0.0.1").unwrap(),
            (
                "api.open-meteo.com".into(),
                443,
                "127.0.0.1:443".parse().unwrap()
            )
        );
        assert_eq!(
            parse_resolve("API.example.org:443:127.0.0.1:8443")
                .unwrap()
                .2,
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(
            parse_resolve("x.test:80:[::1]:8080").unwrap().2,
            "[::1]:8080".parse().unwrap()
        );
        assert!(parse_resolve("no-port").is_err());
        assert!(parse_resolve("a b:80:127.0.0.1").is_err());
        assert!(parse_resolve("x.test:http:127.0.0.1").is_err());
    }

    #[tokio::test]
    async fn a_pointed_name_is_never_looked_up_and_still_judged() {
        let mut reach = Reach::new(Scope::Loopback);
        reach
            .names
            .push(parse_resolve("api.open-meteo.com:443:127.0.0.1:8443").unwrap());
        reach
            .names
            .push(parse_resolve("evil.example:80:169.254.169.254").unwrap());
        let to = resolve("api.open-meteo.com", 443, &reach, Purpose::Fetch)
            .await
            .unwrap();
        assert_eq!(to, "127.0.0.1:8443".parse().unwrap());
        assert!(resolve("evil.example", 80, &reach, Purpose::Fetch)
            .await
            .is_err());
    }

    #[test]
    fn names_are_judged_by_every_address_they_resolve_to() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|a| a.parse().unwrap()).collect()
        };
        // What a hostile DNS answer could hold: none of it is reachable from loopback scope.
        for hostile in [
            "10.0.0.1:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "224.0.0.251:80",
            "255.255.255.255:80",
            "[::ffff:169.254.169.254]:80",
            "[::ffff:10.0.0.1]:80",
            "[fe80::1]:80",
            "[ff02::1]:80",
            "0.0.0.0:80",
        ] {
            let result = first_allowed(
                &addrs(&[hostile]),
                &Reach::new(Scope::Loopback),
                Purpose::Connect,
            );
            assert!(matches!(result, Some(Err(_))), "{hostile} was allowed");
        }
        // With --allow-lan, still never link-local, multicast or broadcast.
        for hostile in [
            "169.254.169.254:80",
            "[::ffff:169.254.1.1]:80",
            "224.0.0.1:80",
        ] {
            let result = first_allowed(
                &addrs(&[hostile]),
                &Reach::new(Scope::Lan),
                Purpose::Connect,
            );
            assert!(
                matches!(result, Some(Err(_))),
                "{hostile} was allowed on a LAN"
            );
        }
        // A name that resolves to both a refused and an allowed address gets the allowed one.
        let mixed = addrs(&["169.254.169.254:80", "127.0.0.1:80"]);
        let chosen = first_allowed(&mixed, &Reach::new(Scope::Loopback), Purpose::Connect);
        assert_eq!(chosen.unwrap().unwrap(), mixed[1]);
        assert!(first_allowed(&[], &Reach::new(Scope::Loopback), Purpose::Connect).is_none());
    }

    #[tokio::test]
    async fn resolve_checks_the_resolved_address() {
        let addr = resolve(
            "localhost",
            80,
            &Reach::new(Scope::Loopback),
            Purpose::Connect,
        )
        .await
        .unwrap();
        assert!(addr.ip().is_loopback());
        let err = resolve(
            "no-such-host.invalid",
            80,
            &Reach::new(Scope::Loopback),
            Purpose::Connect,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NameResolutionFailed);
        // Numeric spellings that resolvers accept (inet_aton) are judged by what they mean.
        for sneaky in ["0xa9fea9fe", "2852039166", "0251.0376.0251.0376", "10.1"] {
            let result = resolve(sneaky, 80, &Reach::new(Scope::Loopback), Purpose::Connect).await;
            assert!(result.is_err(), "{sneaky} resolved to {result:?}");
        }
        let err = resolve("", 80, &Reach::new(Scope::Loopback), Purpose::Bind)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotAllowed);
    }
}
