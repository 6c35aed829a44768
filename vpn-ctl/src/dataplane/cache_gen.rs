//! The generation of XDP forwarding's route and flow caches
//! (`VPN_FIB_GEN`): moving it on invalidates every entry of both at once,
//! on every CPU. Routes move it on (the route watcher), and so do sessions
//! joining or leaving the fast path: a flow's cached decision includes
//! its session.
use anyhow::Context as _;
use aya::{
    maps::{Array, MapData},
    Ebpf,
};
use vpn_common::maps;

fn map(ebpf: &mut Ebpf) -> anyhow::Result<Array<&mut MapData, u32>> {
    Ok(Array::try_from(
        ebpf.map_mut(maps::FIB_GEN)
            .context("cache generation map missing")?,
    )?)
}

/// Writes the next generation (never 0), or 0 when the caches must be off.
pub fn set(ebpf: &mut Ebpf, on: bool) -> anyhow::Result<()> {
    let mut gen = map(ebpf)?;
    let next = if on {
        gen.get(&0, 0)?.wrapping_add(1).max(1)
    } else {
        0
    };
    gen.set(0, next, 0)?;
    Ok(())
}

/// Moves the generation on if the caches are on (it stays 0 otherwise).
pub fn invalidate(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let on = map(ebpf)?.get(&0, 0)? != 0;
    if on {
        set(ebpf, true)?;
    }
    Ok(())
}
