//! Userspace's side of the in-kernel fast path, for every protocol: the one
//! writer of the session maps (`SessionMaps`: a slot allocator, and a
//! `FastSlot` guard that takes the session out of the maps when dropped,
//! whatever ends the session), the shared GRE sequence space (an mmap of
//! `VPN_GRE_SEQ`), and the fast path's per-session counters.
use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use anyhow::Context as _;
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, PerCpuArray},
    Ebpf,
};
use vpn_common::maps::{self, GreSeq, SessionEntry, SessionStats, TunnelKey, MAX_SESSIONS};

/// IPv4 as the data plane keys it: network byte order, as in the packet.
pub fn wire_ip(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

/// The daemon's view of `VPN_GRE_SEQ`: the same pages the programs use.
pub struct SeqPage {
    base: *mut GreSeq,
    len: usize,
}

// SAFETY: the mapping lives as long as the SeqPage and is only accessed
// through atomics (or by single-writer plain stores the kernel tolerates).
unsafe impl Send for SeqPage {}
unsafe impl Sync for SeqPage {}

impl SeqPage {
    pub fn map(ebpf: &Ebpf) -> anyhow::Result<SeqPage> {
        let map = ebpf.map(maps::GRE_SEQ).context("map VPN_GRE_SEQ missing")?;
        let aya::maps::Map::Array(data) = map else {
            anyhow::bail!("VPN_GRE_SEQ is not an array");
        };
        let fd = data.fd().as_fd().as_raw_fd();
        let len = MAX_SESSIONS as usize * size_of::<GreSeq>();
        // SAFETY: mapping a BPF_F_MMAPABLE array of exactly its size, shared.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap VPN_GRE_SEQ");
        }
        Ok(SeqPage {
            base: p.cast(),
            len,
        })
    }

    fn slot(&self, idx: u32) -> *mut GreSeq {
        assert!(idx < MAX_SESSIONS);
        // SAFETY: in bounds (checked above).
        unsafe { self.base.add(idx as usize) }
    }

    /// Takes the next sequence number of session `idx`, as the kernel does.
    pub fn next_seq(&self, idx: u32) -> u32 {
        // SAFETY: an aligned u64 inside the mapping, changed only atomically.
        let a = unsafe { AtomicU64::from_ptr(&raw mut (*self.slot(idx)).seq_out) };
        a.fetch_add(1, Ordering::Relaxed) as u32
    }

    /// Session `idx`'s next sequence number, not taken.
    pub fn peek_seq(&self, idx: u32) -> u32 {
        // SAFETY: as in `next_seq`.
        let a = unsafe { AtomicU64::from_ptr(&raw mut (*self.slot(idx)).seq_out) };
        a.load(Ordering::Relaxed) as u32
    }

    /// The highest sequence number the kernel received, if any.
    pub fn seq_in(&self, idx: u32) -> Option<u32> {
        // SAFETY: aligned u32s inside the mapping; read atomically.
        unsafe {
            let have =
                AtomicU32::from_ptr(&raw mut (*self.slot(idx)).have_in).load(Ordering::Relaxed);
            let v = AtomicU32::from_ptr(&raw mut (*self.slot(idx)).seq_in).load(Ordering::Relaxed);
            (have != 0).then_some(v)
        }
    }

    /// Starts a session's shared space where userspace's own counters are.
    pub fn init(&self, idx: u32, seq_out: u32, seq_in: Option<u32>) {
        // SAFETY: the session is not in the maps yet: nobody else touches the slot.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*self.slot(idx)).seq_out)
                .store(u64::from(seq_out), Ordering::Relaxed);
            AtomicU32::from_ptr(&raw mut (*self.slot(idx)).seq_in)
                .store(seq_in.unwrap_or(0), Ordering::Relaxed);
            AtomicU32::from_ptr(&raw mut (*self.slot(idx)).have_in)
                .store(u32::from(seq_in.is_some()), Ordering::Relaxed);
        }
    }
}

impl Drop for SeqPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The session maps and which of their slots are in use.
pub struct SessionMaps {
    ebpf: Arc<Mutex<Ebpf>>,
    used: Mutex<Vec<bool>>,
}

/// A session on the fast path; dropping it takes the session out of the maps.
pub struct FastSlot {
    maps: Arc<SessionMaps>,
    idx: u32,
    key: TunnelKey,
    assigned_ip: u32,
}

impl SessionMaps {
    pub fn new(ebpf: Arc<Mutex<Ebpf>>) -> Arc<SessionMaps> {
        Arc::new(SessionMaps {
            ebpf,
            used: Mutex::new(vec![false; MAX_SESSIONS as usize]),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ebpf> {
        self.ebpf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn free(&self, idx: u32) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = used.get_mut(idx as usize) {
            *u = false;
        }
    }

    /// Puts a session into the maps. `prepare` runs with the slot index
    /// before the kernel can find the session (e.g. to seed its sequence space).
    /// A slot a restart's predecessor installed (the maps outlived it):
    /// taken as it is, entries and counters untouched.
    pub fn adopt(
        self: &Arc<Self>,
        idx: u32,
        key: TunnelKey,
        assigned_ip: u32,
    ) -> anyhow::Result<FastSlot> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let u = used
            .get_mut(idx as usize)
            .context("fast-path slot out of range")?;
        if std::mem::replace(u, true) {
            anyhow::bail!("fast-path slot {idx} is taken twice");
        }
        Ok(FastSlot {
            maps: self.clone(),
            idx,
            key,
            assigned_ip,
        })
    }

    pub fn install(
        self: &Arc<Self>,
        key: TunnelKey,
        entry: SessionEntry,
        prepare: impl FnOnce(u32),
    ) -> anyhow::Result<FastSlot> {
        let idx = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let i = used
                .iter()
                .position(|u| !u)
                .context("every fast-path slot is in use")?;
            used[i] = true;
            i as u32
        };
        prepare(idx);
        if let Err(e) = enable(&mut self.lock(), idx, key, entry) {
            let _ = disable(&mut self.lock(), idx, key, entry.assigned_ip);
            self.free(idx);
            return Err(e);
        }
        Ok(FastSlot {
            maps: self.clone(),
            idx,
            key,
            assigned_ip: entry.assigned_ip,
        })
    }
}

impl FastSlot {
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// The kernel's counters of this session.
    pub fn stats(&self) -> SessionStats {
        stats(&self.maps.lock(), self.idx).unwrap_or_default()
    }
}

impl Drop for FastSlot {
    fn drop(&mut self) {
        if let Err(e) = disable(&mut self.maps.lock(), self.idx, self.key, self.assigned_ip) {
            log::warn!(
                "fast-path slot {}: removing it from the maps: {e:#}",
                self.idx
            );
        }
        self.maps.free(self.idx);
    }
}

/// Puts a session on the fast path: tunnel key, entry, then its address
/// (last, so egress never finds an address whose entry is not there yet).
fn enable(ebpf: &mut Ebpf, idx: u32, key: TunnelKey, entry: SessionEntry) -> anyhow::Result<()> {
    let mut sessions: Array<&mut MapData, SessionEntry> =
        Array::try_from(ebpf.map_mut(maps::SESSIONS).context("VPN_SESSIONS")?)?;
    sessions.set(idx, entry, 0)?;
    let mut stats: PerCpuArray<&mut MapData, SessionStats> = PerCpuArray::try_from(
        ebpf.map_mut(maps::SESSION_STATS)
            .context("VPN_SESSION_STATS")?,
    )?;
    let zero = aya::maps::PerCpuValues::try_from(vec![
        SessionStats::default();
        aya::util::nr_cpus().map_err(|(_, e)| e)?
    ])?;
    stats.set(idx, zero, 0)?;
    let mut tunnels: HashMap<&mut MapData, TunnelKey, u32> = HashMap::try_from(
        ebpf.map_mut(maps::TUNNEL_SESSIONS)
            .context("VPN_TUNNEL_SESSIONS")?,
    )?;
    tunnels.insert(key, idx, 0)?;
    let mut addrs: LpmTrie<&mut MapData, u32, u32> = LpmTrie::try_from(
        ebpf.map_mut(maps::ADDR_SESSIONS)
            .context("VPN_ADDR_SESSIONS")?,
    )?;
    addrs.insert(&Key::new(32, entry.assigned_ip), idx, 0)?;
    // A flow cached before may now be this session's (a routed subnet's
    // address, say): decided again.
    super::cache_gen::invalidate(ebpf)
}

/// Takes a session off the fast path (address first, entry last).
fn disable(ebpf: &mut Ebpf, idx: u32, key: TunnelKey, assigned_ip: u32) -> anyhow::Result<()> {
    let mut addrs: LpmTrie<&mut MapData, u32, u32> = LpmTrie::try_from(
        ebpf.map_mut(maps::ADDR_SESSIONS)
            .context("VPN_ADDR_SESSIONS")?,
    )?;
    let _ = addrs.remove(&Key::new(32, assigned_ip));
    let mut tunnels: HashMap<&mut MapData, TunnelKey, u32> = HashMap::try_from(
        ebpf.map_mut(maps::TUNNEL_SESSIONS)
            .context("VPN_TUNNEL_SESSIONS")?,
    )?;
    let _ = tunnels.remove(&key);
    let mut sessions: Array<&mut MapData, SessionEntry> =
        Array::try_from(ebpf.map_mut(maps::SESSIONS).context("VPN_SESSIONS")?)?;
    let cleared = sessions.set(idx, SessionEntry::default(), 0);
    // XDP forwarding's cached flows of the session end with it.
    super::cache_gen::invalidate(ebpf)?;
    Ok(cleared?)
}

/// The fast path's counters of session `idx`, summed over CPUs.
fn stats(ebpf: &Ebpf, idx: u32) -> anyhow::Result<SessionStats> {
    let m: PerCpuArray<&MapData, SessionStats> =
        PerCpuArray::try_from(ebpf.map(maps::SESSION_STATS).context("VPN_SESSION_STATS")?)?;
    let mut total = SessionStats::default();
    for s in m.get(&idx, 0)?.iter() {
        total.rx_packets += s.rx_packets;
        total.rx_bytes += s.rx_bytes;
        total.tx_packets += s.tx_packets;
        total.tx_bytes += s.tx_bytes;
        total.drops += s.drops;
    }
    Ok(total)
}
