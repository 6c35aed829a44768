//! The successor's side: the predecessor's descriptors become owned
//! objects again, and its carried sessions join the new services.
use std::time::Instant;

use super::{own, Handoff};
use crate::{
    config::Config,
    daemon::{setup::Inherited, Shared},
    net::ports::{self, BoundSocket},
};

impl Handoff {
    /// What `setup` takes over. Sockets follow the configuration: one it
    /// no longer names is closed, one it names anew is bound.
    pub fn inherited(&mut self, cfg: &Config) -> anyhow::Result<Inherited> {
        let mut carried = std::mem::take(&mut self.sockets);
        let mut sockets = Vec::new();
        for spec in cfg.listeners() {
            let found = carried.iter().position(|s| {
                s.service == spec.service && s.proto == spec.proto && s.port == spec.port
            });
            sockets.push(match found {
                Some(i) => BoundSocket {
                    spec,
                    fd: own(carried.swap_remove(i).fd)?,
                },
                None => ports::bind(spec)?,
            });
        }
        for s in carried {
            drop(own(s.fd));
        }
        Ok(Inherited {
            wan: self.wan.clone(),
            pool: self
                .pool
                .parse()
                .map_err(|e| anyhow::anyhow!("handoff pool {}: {e}", self.pool))?,
            tun: std::mem::take(&mut self.tun)
                .into_iter()
                .map(own)
                .collect::<anyhow::Result<_>>()?,
            sockets,
            native_udp: std::mem::take(&mut self.native_udp)
                .into_iter()
                .map(own)
                .collect::<anyhow::Result<_>>()?,
            pptp_gre: self.pptp_gre.take().map(own).transpose()?,
            radius_boot: self.radius.as_ref().map(|r| r.boot),
            ipsec_natt: std::mem::take(&mut self.ipsec_natt)
                .into_iter()
                .map(own)
                .collect::<anyhow::Result<_>>()?,
            started_at: self.started_at,
            restarts: self.restarts + 1,
            xdp: crate::dataplane::XdpAttachment {
                mode: if self.xdp_mode == "generic" {
                    "generic"
                } else {
                    "native"
                },
                prog_id: self.xdp_prog_id,
            },
            tc_prog_id: self.tc_prog_id,
        })
    }

    /// Puts the carried sessions into the new services. A session that
    /// cannot be rebuilt is logged and left to time out at its client.
    pub fn restore(&self, shared: &std::sync::Arc<Shared>) {
        let now = Instant::now();
        shared.pool.continue_row_ids(self.next_row_id);
        let native = &shared.native;
        let mut carried = 0;
        let mut lost = 0;
        for c in &self.native {
            match native
                .registry
                .restore(c, native.psk.clone(), native.params, now)
            {
                Ok(()) => carried += 1,
                Err(e) => {
                    lost += 1;
                    log::warn!(
                        "restart: native session {} ({}) not carried over: {e:#}",
                        c.row_id,
                        c.user
                    );
                }
            }
        }
        let (ok, bad) = crate::daemon::pptp::carry::restore(shared, &self.pptp);
        carried += ok;
        lost += bad;
        if let (Some(i), Some(c)) = (&shared.ipsec, &self.ipsec) {
            let bad = i.restore(c);
            if bad > 0 {
                log::warn!("restart: {bad} ESP SAs could not be rebuilt");
            }
        }
        let secure =
            |id: u64| -> Option<std::sync::Arc<dyn crate::daemon::l2tp::link::SecureLink>> {
                let peer = shared.ipsec.as_ref()?.peer_by_id(id)?;
                Some(peer)
            };
        if let Some(l2tp) = &shared.l2tp {
            let (ok, bad) = crate::daemon::l2tp::carry::restore(l2tp, &self.l2tp, &secure);
            carried += ok;
            lost += bad;
        } else {
            lost += self.l2tp.iter().map(|t| t.calls.len()).sum::<usize>();
        }
        if let (Some(r), Some(c)) = (&shared.radius, &self.radius) {
            r.resume(shared, c);
        }
        let report = crate::report::RestartReport {
            carried,
            lost,
            ended: self.ended.clone(),
        };
        log::info!(
            "restart {} (from vpn-ctl {}): {}",
            self.restarts + 1,
            self.from_version,
            report.describe()
        );
        *shared.restarted.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }
}
