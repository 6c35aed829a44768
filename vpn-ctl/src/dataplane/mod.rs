//! Loading, attaching and reading the eBPF data plane.
pub mod bpffs;
pub mod cache_gen;
pub mod esp_spis;
pub mod fastpath;
pub mod forward;
pub mod logger;
pub mod test_run;

use std::path::Path;

use anyhow::Context as _;
use aya::{
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray},
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use serde::{Deserialize, Serialize};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{self, DataplaneConfig, TunnelKey},
};

use crate::config::XdpModeSetting;

pub const XDP_PROGRAM: &str = "vpn_xdp_wan";
/// XDP on each forwarding (LAN) interface (decisions #54).
pub const XDP_LAN_PROGRAM: &str = "vpn_xdp_lan";
pub const TC_PROGRAM: &str = "vpn_tc_egress";
pub const TC_WAN_PROGRAM: &str = "vpn_tc_wan_ingress";

/// The maps of a running gateway, reopened from their pins (a restart's
/// successor): its programs stay attached through pinned links, so none
/// is loaded again (that would need CAP_PERFMON, which the daemon dropped).
pub fn load_pinned(log_level: log::LevelFilter, dir: &Path) -> anyhow::Result<Ebpf> {
    let level = log_level as usize as u8;
    let paths: Vec<_> = maps::PINNED.iter().map(|m| (*m, dir.join(m))).collect();
    let mut loader = EbpfLoader::new();
    loader.override_global(aya_log::LEVEL, &level, false);
    for (name, path) in &paths {
        if !path.exists() {
            anyhow::bail!("map pin {} is missing", path.display());
        }
        loader.map_pin_path(name, path.as_path());
    }
    // The running programs' log ring, so their lines still reach the log
    // (a predecessor from before it was pinned has none: its programs'
    // lines stop until the next `up`).
    let log_ring = dir.join(LOG_RING);
    if log_ring.exists() {
        loader.map_pin_path(LOG_RING, log_ring.as_path());
    }
    loader
        .load(crate::EBPF_OBJECT)
        .context("cannot reopen the pinned eBPF maps")
}

/// Pins an attachment's link as `dir/link_NAME`: the program stays attached
/// across a restart's exec, until the pin is removed (`down`, the journal).
fn pin_link(link: aya::programs::links::FdLink, dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(format!("link_{name}"));
    link.pin(&path)
        .with_context(|| format!("pin link {}", path.display()))?;
    Ok(())
}

/// Loads the object and both programs into the kernel (verifier), unattached.
pub fn load(log_level: log::LevelFilter) -> anyhow::Result<Ebpf> {
    let level = log_level as usize as u8;
    // A flow table per possible CPU (the maps' own size is 1).
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)? as u32;
    let mut ebpf = EbpfLoader::new()
        .override_global(aya_log::LEVEL, &level, false)
        .map_max_entries(maps::DOWN_FLOWS, cpus)
        .map_max_entries(maps::UP_FLOWS, cpus)
        .map_max_entries(maps::DOWN_FRAMES, cpus)
        .load(crate::EBPF_OBJECT)
        .context("cannot load the eBPF object (is this kernel built with BPF and BTF?)")?;
    let xdp: &mut Xdp = program(&mut ebpf, XDP_PROGRAM)?.try_into()?;
    xdp.load().context("the kernel rejected the XDP program")?;
    let lan: &mut Xdp = program(&mut ebpf, XDP_LAN_PROGRAM)?.try_into()?;
    lan.load()
        .context("the kernel rejected the forwarding interfaces' XDP program")?;
    let tc: &mut SchedClassifier = program(&mut ebpf, TC_PROGRAM)?.try_into()?;
    tc.load().context("the kernel rejected the TC program")?;
    let wan: &mut SchedClassifier = program(&mut ebpf, TC_WAN_PROGRAM)?.try_into()?;
    wan.load()
        .context("the kernel rejected the WAN TC ingress program")?;
    Ok(ebpf)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the eBPF object"))
}

pub fn xdp(ebpf: &Ebpf) -> anyhow::Result<&Xdp> {
    Ok(ebpf
        .program(XDP_PROGRAM)
        .context("XDP program missing")?
        .try_into()?)
}

/// The WAN's TC ingress program (the fast paths' decapsulation).
pub fn tc_wan(ebpf: &Ebpf) -> anyhow::Result<&SchedClassifier> {
    Ok(ebpf
        .program(TC_WAN_PROGRAM)
        .context("WAN TC program missing")?
        .try_into()?)
}

/// Writes the configuration slot, then moves the caches' generation on:
/// XDP forwarding's frame cache relies on the configuration a kept
/// decision was made under for as long as its generation lasts.
pub fn write_config(ebpf: &mut Ebpf, cfg: &DataplaneConfig) -> anyhow::Result<()> {
    let mut arr: Array<&mut MapData, DataplaneConfig> =
        Array::try_from(ebpf.map_mut(maps::CONFIG).context("config map missing")?)?;
    arr.set(0, cfg, 0).context("write config map")?;
    cache_gen::invalidate(ebpf)
}

/// How the XDP program ended up attached.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct XdpAttachment {
    /// "native" or "generic".
    pub mode: &'static str,
    pub prog_id: u32,
}

/// Attaches the WAN's XDP program to `iface` (see `attach_xdp_program`).
pub fn attach_xdp(
    ebpf: &mut Ebpf,
    iface: &str,
    setting: XdpModeSetting,
    pins: &Path,
) -> anyhow::Result<XdpAttachment> {
    attach_xdp_program(ebpf, XDP_PROGRAM, iface, setting, pins, XDP_PROGRAM)
}

/// Attaches the forwarding interfaces' XDP program to `iface`, its link
/// pinned as `link_vpn_xdp_lan_IFACE`.
pub fn attach_xdp_lan(
    ebpf: &mut Ebpf,
    iface: &str,
    setting: XdpModeSetting,
    pins: &Path,
) -> anyhow::Result<XdpAttachment> {
    let pin = format!("{XDP_LAN_PROGRAM}_{iface}");
    attach_xdp_program(ebpf, XDP_LAN_PROGRAM, iface, setting, pins, &pin)
}

/// Attaches XDP program `name` to `iface`: native where the driver allows
/// it, else generic. The link is pinned in `pins` as `link_PIN`.
fn attach_xdp_program(
    ebpf: &mut Ebpf,
    name: &str,
    iface: &str,
    setting: XdpModeSetting,
    pins: &Path,
    pin: &str,
) -> anyhow::Result<XdpAttachment> {
    let prog: &mut Xdp = program(ebpf, name)?.try_into()?;
    let tries: &[(XdpMode, &str)] = match setting {
        XdpModeSetting::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
        XdpModeSetting::Native => &[(XdpMode::Driver, "native")],
        XdpModeSetting::Generic => &[(XdpMode::Skb, "generic")],
    };
    let mut last = None;
    for (mode, name) in tries {
        match prog.attach(iface, *mode) {
            Ok(id) => {
                let link = aya::programs::links::FdLink::try_from(prog.take_link(id)?)
                    .context("the XDP attachment is not a bpf_link")?;
                pin_link(link, pins, pin)?;
                let prog_id = prog.info()?.id();
                return Ok(XdpAttachment {
                    mode: name,
                    prog_id,
                });
            }
            Err(e) => {
                log::debug!("XDP {name} attach on {iface}: {e}");
                last = Some((name, e));
            }
        }
    }
    let (name, e) = last.context("no XDP mode to try")?;
    Err(anyhow::anyhow!(
        "cannot attach XDP to {iface} in {name} mode: {e}"
    ))
}

/// Attaches the fast path's decapsulation to the WAN's ingress (TCX).
pub fn attach_tc_wan_ingress(ebpf: &mut Ebpf, iface: &str, pins: &Path) -> anyhow::Result<u32> {
    attach_tc(ebpf, TC_WAN_PROGRAM, iface, TcAttachType::Ingress, pins)
}

fn attach_tc(
    ebpf: &mut Ebpf,
    name: &str,
    iface: &str,
    at: TcAttachType,
    pins: &Path,
) -> anyhow::Result<u32> {
    let prog: &mut SchedClassifier = program(ebpf, name)?.try_into()?;
    let id = prog
        .attach(iface, at)
        .with_context(|| format!("cannot attach TC {at:?} to {iface}"))?;
    let link = aya::programs::links::FdLink::try_from(prog.take_link(id)?)
        .context("the TC attachment is not a TCX link")?;
    pin_link(link, pins, name)?;
    Ok(prog.info()?.id())
}

/// Attaches the TC program to `iface`'s egress (TCX). Returns its program id.
pub fn attach_tc_egress(ebpf: &mut Ebpf, iface: &str, pins: &Path) -> anyhow::Result<u32> {
    attach_tc(ebpf, TC_PROGRAM, iface, TcAttachType::Egress, pins)
}

/// aya-log's ring buffer, which the programs write their log lines to.
const LOG_RING: &str = "AYA_LOGS";

/// Pins the contract maps and the log ring under `dir` (created here).
pub fn pin_maps(ebpf: &Ebpf, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for name in maps::PINNED.into_iter().chain([LOG_RING]) {
        let map = ebpf
            .map(name)
            .with_context(|| format!("map {name} missing"))?;
        let path = dir.join(name);
        map.pin(&path)
            .with_context(|| format!("pin {} at {}", name, path.display()))?;
    }
    Ok(())
}

/// One named counter value, summed over CPUs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedCount {
    pub name: String,
    pub value: u64,
}

fn sum_per_cpu(
    ebpf: &Ebpf,
    map: &str,
    names: &[(u32, &'static str)],
) -> anyhow::Result<Vec<NamedCount>> {
    let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
        ebpf.map(map)
            .with_context(|| format!("map {map} missing"))?,
    )?;
    names
        .iter()
        .map(|(i, name)| {
            let v = arr.get(i, 0)?;
            Ok(NamedCount {
                name: name.to_string(),
                value: v.iter().sum(),
            })
        })
        .collect()
}

pub fn counters(ebpf: &Ebpf) -> anyhow::Result<Vec<NamedCount>> {
    let names: Vec<_> = Counter::ALL.iter().map(|c| (*c as u32, c.name())).collect();
    sum_per_cpu(ebpf, maps::STATS, &names)
}

pub fn drops(ebpf: &Ebpf) -> anyhow::Result<Vec<NamedCount>> {
    let names: Vec<_> = DropReason::ALL
        .iter()
        .map(|r| (*r as u32, r.name()))
        .collect();
    sum_per_cpu(ebpf, maps::DROPS, &names)
}

/// Fill level of one map.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MapFill {
    pub name: String,
    pub kind: String,
    pub max_entries: u32,
    /// Entries in use: keys of hash/LPM maps; arrays are always full.
    pub entries: u32,
}

pub fn map_fill(ebpf: &Ebpf) -> anyhow::Result<Vec<MapFill>> {
    let mut out = Vec::new();
    for name in maps::PINNED {
        let map = ebpf
            .map(name)
            .with_context(|| format!("map {name} missing"))?;
        let info = match map {
            aya::maps::Map::HashMap(m) => m.info(),
            aya::maps::Map::DevMapHash(m) => m.info(),
            aya::maps::Map::LpmTrie(m) => m.info(),
            aya::maps::Map::Array(m) | aya::maps::Map::PerCpuArray(m) => m.info(),
            _ => anyhow::bail!("map {name} has an unexpected type"),
        }?;
        let max_entries = info.max_entries();
        let (kind, entries): (&str, u32) = match name {
            maps::TUNNEL_SESSIONS => {
                let m: HashMap<&MapData, TunnelKey, u32> = HashMap::try_from(map)?;
                ("hash", m.keys().filter(Result::is_ok).count() as u32)
            }
            maps::ADDR_SESSIONS => {
                let m: LpmTrie<&MapData, u32, u32> = LpmTrie::try_from(map)?;
                ("lpm_trie", m.keys().filter(Result::is_ok).count() as u32)
            }
            maps::ESP_SPIS => {
                let m: HashMap<&MapData, u32, u32> = HashMap::try_from(map)?;
                ("hash", m.keys().filter(Result::is_ok).count() as u32)
            }
            maps::FORWARD_IFS => {
                let m: Array<&MapData, vpn_common::maps::ForwardIf> = Array::try_from(map)?;
                let used = m
                    .iter()
                    .filter(|f| f.as_ref().is_ok_and(|f| f.ifindex != 0));
                ("array", used.count() as u32)
            }
            maps::REDIRECT_DEVS => {
                let m = aya::maps::DevMapHash::try_from(map)?;
                ("devmap_hash", m.keys().filter(Result::is_ok).count() as u32)
            }
            maps::STATS
            | maps::DROPS
            | maps::SESSION_STATS
            | maps::FIB_CACHE
            | maps::SESSION_CACHE => ("percpu_array", max_entries),
            _ => ("array", max_entries),
        };
        out.push(MapFill {
            name: name.to_string(),
            kind: kind.to_string(),
            max_entries,
            entries,
        });
    }
    Ok(out)
}
