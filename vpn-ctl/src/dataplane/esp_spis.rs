//! The inbound SPIs the WAN XDP program lets through (`maps::ESP_SPIS`):
//! ESP for any other SPI is dropped and counted before it costs the daemon
//! a wake-up. The IPsec service adds an SPI with its SA and removes it with it.
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aya::{
    maps::{HashMap, MapData},
    Ebpf,
};
use vpn_common::maps::{self, ESP_F_RAW, ESP_F_UDP};

pub fn insert(ebpf: &mut Ebpf, spi: u32, udp: bool) -> anyhow::Result<()> {
    let mut m: HashMap<&mut MapData, u32, u32> =
        HashMap::try_from(ebpf.map_mut(maps::ESP_SPIS).context("VPN_ESP_SPIS")?)?;
    m.insert(spi, if udp { ESP_F_UDP } else { ESP_F_RAW }, 0)?;
    Ok(())
}

pub fn remove(ebpf: &mut Ebpf, spi: u32) -> anyhow::Result<()> {
    let mut m: HashMap<&mut MapData, u32, u32> =
        HashMap::try_from(ebpf.map_mut(maps::ESP_SPIS).context("VPN_ESP_SPIS")?)?;
    m.remove(&spi)?;
    Ok(())
}

/// The daemon's handle: the shared BPF object.
pub struct EspSpis(pub Arc<Mutex<Ebpf>>);

impl EspSpis {
    pub fn insert(&self, spi: u32, udp: bool) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = insert(&mut e, spi, udp) {
            log::warn!("ipsec: SPI {spi:08x} not added to the data plane ({err:#}); its ESP is dropped on the WAN");
        }
    }

    pub fn remove(&self, spi: u32) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = remove(&mut e, spi);
    }
}
