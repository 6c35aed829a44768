//! rtnetlink queries and changes the gateway makes at start-up.
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::AddressAttribute,
    link::LinkAttribute,
    route::{RouteAddress, RouteAttribute},
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::prefix::Ipv4Prefix;

/// An IPv4 network the host already uses, and where.
#[derive(Clone, Debug)]
pub struct HostNetwork {
    pub prefix: Ipv4Prefix,
    /// "address 10.0.0.5/24 on eth0" or "route 10.8.0.0/16 via eth1".
    pub what: String,
    /// For interface addresses: the interface.
    pub ifname: Option<String>,
}

pub struct Netlink {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Netlink {
    pub fn connect() -> anyhow::Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().context("netlink socket")?;
        Ok(Netlink {
            handle,
            conn: tokio::spawn(conn),
        })
    }

    pub async fn link_name(&self, index: u32) -> anyhow::Result<String> {
        // Read the whole reply: dropping a stream early leaves netlink-proto
        // with a response it cannot deliver.
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_collect()
            .await?;
        links
            .into_iter()
            .flat_map(|m| m.attributes)
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            })
            .with_context(|| format!("no interface with index {index}"))
    }

    /// The output interface of the IPv4 default route in the main table.
    pub async fn default_route_ifindex(&self) -> anyhow::Result<Option<u32>> {
        Ok(self.default_route().await?.map(|(_, oif)| oif))
    }

    /// The IPv4 default route of the main table: (gateway, output interface).
    pub async fn default_route(&self) -> anyhow::Result<Option<(Option<Ipv4Addr>, u32)>> {
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut found = None;
        // Read the whole dump (see link_name).
        while let Some(r) = routes.try_next().await? {
            if r.header.destination_prefix_length != 0 || r.header.table != libc::RT_TABLE_MAIN {
                continue;
            }
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            let gw = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                _ => None,
            });
            if let (None, Some(oif)) = (found, oif) {
                found = Some((gw, oif));
            }
        }
        Ok(found)
    }

    fn route_msg(
        prefix: Ipv4Prefix,
        via: Option<Ipv4Addr>,
        oif: u32,
    ) -> netlink_packet_route::route::RouteMessage {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(prefix.network(), prefix.prefix_len())
            .output_interface(oif);
        if let Some(g) = via {
            b = b.gateway(g);
        }
        b.build()
    }

    pub async fn add_route(
        &self,
        prefix: Ipv4Prefix,
        via: Option<Ipv4Addr>,
        oif: u32,
    ) -> anyhow::Result<()> {
        self.handle
            .route()
            .add(Self::route_msg(prefix, via, oif))
            .execute()
            .await
            .with_context(|| format!("add route {prefix}"))
    }

    pub async fn del_route(
        &self,
        prefix: Ipv4Prefix,
        via: Option<Ipv4Addr>,
        oif: u32,
    ) -> anyhow::Result<()> {
        self.handle
            .route()
            .del(Self::route_msg(prefix, via, oif))
            .execute()
            .await
            .with_context(|| format!("delete route {prefix}"))
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> anyhow::Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .context("set MTU")
    }

    /// Every IPv4 network of the host: interface addresses and non-default routes.
    pub async fn host_networks(&self) -> anyhow::Result<Vec<HostNetwork>> {
        let mut out = Vec::new();
        let mut addrs = self.handle.address().get().execute();
        while let Some(a) = addrs.try_next().await? {
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let Some(ip) = ip else { continue };
            if ip.is_loopback() {
                continue;
            }
            let name = self.link_name(a.header.index).await.unwrap_or_default();
            let prefix = Ipv4Prefix::new(ip, a.header.prefix_len).map_err(anyhow::Error::msg)?;
            out.push(HostNetwork {
                prefix,
                what: format!("address {ip}/{} on {name}", a.header.prefix_len),
                ifname: Some(name),
            });
        }
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(r) = routes.try_next().await? {
            let len = r.header.destination_prefix_length;
            if len == 0 || r.header.table == libc::RT_TABLE_LOCAL {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
                _ => None,
            });
            let Some(dst) = dst else { continue };
            if dst.is_loopback() {
                continue;
            }
            let prefix = Ipv4Prefix::new(dst, len).map_err(anyhow::Error::msg)?;
            out.push(HostNetwork {
                prefix,
                what: format!("route {prefix}"),
                ifname: None,
            });
        }
        Ok(out)
    }

    pub async fn add_address(&self, index: u32, ip: Ipv4Addr, len: u8) -> anyhow::Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), len)
            .execute()
            .await
            .with_context(|| format!("add address {ip}/{len}"))
    }

    pub async fn set_up(&self, index: u32) -> anyhow::Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .context("set link up")
    }
}
