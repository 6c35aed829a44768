//! XDP forwarding's maps (decisions #54): the forwarding interfaces with
//! their MACs, the device map it redirects through, and the switch in the
//! config slot that the netfilter check turns on and off.
use anyhow::Context as _;
use aya::{
    maps::{Array, DevMapHash, MapData},
    Ebpf,
};
use vpn_common::maps::{self, DataplaneConfig, ForwardIf, CONFIG_F_XDP_FORWARD};

/// Fills the maps: each forwarding interface `(ifindex, mac)`, and the
/// WAN and them as redirect targets.
pub fn set_interfaces(
    ebpf: &mut Ebpf,
    wan_ifindex: u32,
    lan: &[(u32, [u8; 6])],
) -> anyhow::Result<()> {
    {
        let mut ifs: Array<&mut MapData, ForwardIf> = Array::try_from(
            ebpf.map_mut(maps::FORWARD_IFS)
                .context("forwarding interfaces map missing")?,
        )?;
        anyhow::ensure!(
            lan.len() <= ifs.len() as usize,
            "{} forwarding interfaces, at most {}",
            lan.len(),
            ifs.len()
        );
        // Packed from slot 0: the program's scan stops at an empty slot.
        for (slot, (ifindex, mac)) in (0u32..).zip(lan) {
            let f = ForwardIf {
                ifindex: *ifindex,
                mac: *mac,
                _pad: [0; 2],
            };
            ifs.set(slot, f, 0)
                .context("write the forwarding interfaces map")?;
        }
    }
    let mut devs = DevMapHash::try_from(
        ebpf.map_mut(maps::REDIRECT_DEVS)
            .context("redirect device map missing")?,
    )?;
    for ifindex in lan.iter().map(|(i, _)| *i).chain([wan_ifindex]) {
        devs.insert(ifindex, ifindex, None, 0)
            .with_context(|| format!("add interface {ifindex} to the redirect device map"))?;
    }
    Ok(())
}

/// Turns XDP forwarding on or off in the config slot; returns whether it
/// changed. A change moves the caches' generation on (see `write_config`).
pub fn set_enabled(ebpf: &mut Ebpf, on: bool) -> anyhow::Result<bool> {
    let mut arr: Array<&mut MapData, DataplaneConfig> =
        Array::try_from(ebpf.map_mut(maps::CONFIG).context("config map missing")?)?;
    let mut cfg = arr.get(&0, 0).context("read config map")?;
    let was = cfg.flags & CONFIG_F_XDP_FORWARD != 0;
    if was == on {
        return Ok(false);
    }
    cfg.flags ^= CONFIG_F_XDP_FORWARD;
    arr.set(0, cfg, 0).context("write config map")?;
    super::cache_gen::invalidate(ebpf)?;
    Ok(true)
}
