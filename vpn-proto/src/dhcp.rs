//! DHCPINFORM over PPP (RFC 2131 §3.4.3): Windows RAS clients ask for
//! options after IPCP, and take routes from the answer's classless static
//! routes (RFC 3442 option 121, and Microsoft's 249). The gateway answers
//! with those routes and its DNS servers; anything else is not DHCP for us.
use std::net::Ipv4Addr;

pub const SERVER_PORT: u16 = vpn_common::wire::PORT_DHCP_SERVER;
pub const CLIENT_PORT: u16 = 68;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const BOOTP_LEN: usize = 236;
const OPT_PAD: u8 = 0;
const OPT_DNS: u8 = 6;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_MS_CLASSLESS_ROUTES: u8 = 249;
const OPT_END: u8 = 255;
const DHCP_INFORM: u8 = 8;
const DHCP_ACK: u8 = 5;

/// What the answer carries.
pub struct InformAnswer<'a> {
    /// The gateway's address on the VPN (server identifier, router).
    pub server: Ipv4Addr,
    pub routes: &'a [(Ipv4Addr, u8)],
    pub dns: &'a [Ipv4Addr],
}

/// A DHCPINFORM's UDP payload as Windows RAS sends it over PPP (also for
/// test clients): `client` in ciaddr, asking for `params` (option 55).
pub fn inform_request(client: Ipv4Addr, xid: u32, params: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![0u8; BOOTP_LEN];
    b[0] = 1;
    b[1] = 8; // RAS: htype 8 with hlen 16
    b[2] = 16;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[12..16].copy_from_slice(&client.octets());
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, DHCP_INFORM]);
    if let Some(p) = params {
        b.push(OPT_PARAMS);
        b.push(p.len() as u8);
        b.extend_from_slice(p);
    }
    b.push(OPT_END);
    b
}

/// The options of a DHCP message's UDP payload, or None if it is not one.
pub fn message_options(payload: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    if payload.len() < BOOTP_LEN + 4 || payload[BOOTP_LEN..BOOTP_LEN + 4] != MAGIC {
        return None;
    }
    Some(
        options(&payload[BOOTP_LEN + 4..])
            .into_iter()
            .map(|(c, v)| (c, v.to_vec()))
            .collect(),
    )
}

/// Options of a DHCP message body (after the magic cookie).
fn options(mut b: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((&code, rest)) = b.split_first() {
        match code {
            OPT_PAD => b = rest,
            OPT_END => break,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    break;
                };
                let Some(value) = rest.get(..len as usize) else {
                    break;
                };
                out.push((code, value));
                b = &rest[len as usize..];
            }
        }
    }
    out
}

/// RFC 3442: prefix length, the significant octets of the network, router.
fn classless_routes(routes: &[(Ipv4Addr, u8)], router: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::new();
    for &(net, len) in routes {
        v.push(len);
        v.extend_from_slice(&net.octets()[..usize::from(len).div_ceil(8)]);
        v.extend_from_slice(&router.octets());
    }
    v
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `ip`: an IPv4 packet the client `client` sent. If it is a DHCPINFORM,
/// the IPv4 packet answering it (a DHCPACK from the server's port 67 to
/// the client's port 68); else None.
pub fn answer_inform(ip: &[u8], client: Ipv4Addr, a: &InformAnswer<'_>) -> Option<Vec<u8>> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != 17 {
        return None;
    }
    let udp = &ip[ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != SERVER_PORT {
        return None;
    }
    let req = udp.get(8..)?;
    if req.len() < BOOTP_LEN + 4 || req[0] != 1 || req[BOOTP_LEN..BOOTP_LEN + 4] != MAGIC {
        return None;
    }
    let opts = options(&req[BOOTP_LEN + 4..]);
    let find = |c| opts.iter().find(|(code, _)| *code == c).map(|(_, v)| *v);
    if find(OPT_MESSAGE_TYPE) != Some(&[DHCP_INFORM]) {
        return None;
    }
    // Only what the client asked for (all of it if it did not say).
    let wanted = |c: u8| find(OPT_PARAMS).is_none_or(|p| p.contains(&c));
    let mut body = vec![0u8; BOOTP_LEN];
    body[0] = 2; // BOOTREPLY
    body[1..3].copy_from_slice(&req[1..3]); // htype, hlen
    body[4..8].copy_from_slice(&req[4..8]); // xid
    body[10..12].copy_from_slice(&req[10..12]); // flags
    body[12..16].copy_from_slice(&req[12..16]); // ciaddr
    body[24..28].copy_from_slice(&req[24..28]); // giaddr
    body[28..44].copy_from_slice(&req[28..44]); // chaddr
    body.extend_from_slice(&MAGIC);
    let mut opt = |code: u8, value: &[u8]| {
        body.push(code);
        body.push(value.len() as u8);
        body.extend_from_slice(value);
    };
    opt(OPT_MESSAGE_TYPE, &[DHCP_ACK]);
    opt(OPT_SERVER_ID, &a.server.octets());
    let routes = classless_routes(a.routes, a.server);
    if !a.routes.is_empty() && routes.len() <= 255 {
        for code in [OPT_CLASSLESS_ROUTES, OPT_MS_CLASSLESS_ROUTES] {
            if wanted(code) {
                opt(code, &routes);
            }
        }
    }
    if !a.dns.is_empty() && a.dns.len() <= 63 && wanted(OPT_DNS) {
        let dns: Vec<u8> = a.dns.iter().flat_map(|d| d.octets()).collect();
        opt(OPT_DNS, &dns);
    }
    body.push(OPT_END);
    let ulen = (8 + body.len()) as u16;
    let mut out = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    out[2..4].copy_from_slice(&(20 + ulen).to_be_bytes());
    out.extend_from_slice(&a.server.octets());
    out.extend_from_slice(&client.octets());
    let sum = checksum(&out);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&SERVER_PORT.to_be_bytes());
    out.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    out.extend_from_slice(&ulen.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPINFORM as Windows RAS sends it (to the broadcast address),
    /// asking for `params`.
    fn inform(client: Ipv4Addr, params: Option<&[u8]>) -> Vec<u8> {
        let b = inform_request(client, 0x1234_5678, params);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((28 + b.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&client.octets());
        ip.extend_from_slice(&[255, 255, 255, 255]);
        ip.extend_from_slice(&CLIENT_PORT.to_be_bytes());
        ip.extend_from_slice(&SERVER_PORT.to_be_bytes());
        ip.extend_from_slice(&((8 + b.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&b);
        crate::fuzz_seed::save("dhcp", &ip);
        ip
    }

    fn answer<'a>(dns: &'a [Ipv4Addr], routes: &'a [(Ipv4Addr, u8)]) -> InformAnswer<'a> {
        InformAnswer {
            server: Ipv4Addr::new(10, 99, 0, 1),
            routes,
            dns,
        }
    }

    #[test]
    fn an_inform_gets_an_ack_with_classless_routes_and_dns() {
        let client = Ipv4Addr::new(10, 99, 0, 7);
        let routes = [
            (Ipv4Addr::new(172, 16, 10, 0), 24),
            (Ipv4Addr::new(10, 0, 0, 0), 8),
        ];
        let dns = [Ipv4Addr::new(172, 16, 10, 2)];
        let req = inform(
            client,
            Some(&[1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]),
        );
        let ack = answer_inform(&req, client, &answer(&dns, &routes)).unwrap();
        assert_eq!(checksum(&ack[..20]), 0, "IPv4 header checksum");
        assert_eq!(&ack[12..16], &[10, 99, 0, 1]);
        assert_eq!(&ack[16..20], &client.octets());
        assert_eq!(&ack[20..24], &[0, 67, 0, 68]);
        let body = &ack[28..];
        assert_eq!(body[0], 2);
        assert_eq!(&body[4..8], &0x1234_5678u32.to_be_bytes(), "xid");
        assert_eq!(&body[12..16], &client.octets(), "ciaddr");
        assert_eq!(
            &body[16..20],
            &[0; 4],
            "no address assigned by an INFORM's answer"
        );
        let opts = options(&body[BOOTP_LEN + 4..]);
        let get = |c| {
            opts.iter()
                .find(|(code, _)| *code == c)
                .map(|(_, v)| v.to_vec())
        };
        assert_eq!(get(OPT_MESSAGE_TYPE), Some(vec![DHCP_ACK]));
        assert_eq!(get(OPT_SERVER_ID), Some(vec![10, 99, 0, 1]));
        let want = vec![24, 172, 16, 10, 10, 99, 0, 1, 8, 10, 10, 99, 0, 1];
        assert_eq!(get(OPT_CLASSLESS_ROUTES), Some(want.clone()));
        assert_eq!(get(OPT_MS_CLASSLESS_ROUTES), Some(want));
        assert_eq!(get(OPT_DNS), Some(vec![172, 16, 10, 2]));
    }

    #[test]
    fn only_what_is_asked_and_only_informs() {
        let client = Ipv4Addr::new(10, 99, 0, 7);
        let routes = [(Ipv4Addr::new(172, 16, 10, 0), 24)];
        let req = inform(client, Some(&[249]));
        let ack = answer_inform(&req, client, &answer(&[], &routes)).unwrap();
        let opts = options(&ack[28 + BOOTP_LEN + 4..]);
        assert!(opts.iter().any(|(c, _)| *c == OPT_MS_CLASSLESS_ROUTES));
        assert!(!opts
            .iter()
            .any(|(c, _)| *c == OPT_CLASSLESS_ROUTES || *c == OPT_DNS));
        // A DISCOVER, another port, truncations: not ours, never a panic.
        let mut discover = inform(client, None);
        let at = 28 + BOOTP_LEN + 4 + 2;
        discover[at] = 1;
        assert!(answer_inform(&discover, client, &answer(&[], &routes)).is_none());
        let mut other = inform(client, None);
        other[23] = 53;
        assert!(answer_inform(&other, client, &answer(&[], &routes)).is_none());
        for n in 0..req.len() {
            let _ = answer_inform(&req[..n], client, &answer(&[], &routes));
        }
    }
}
