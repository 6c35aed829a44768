//! Informational exchanges under an established ISAKMP SA: Delete (both
//! directions), DPD R-U-THERE/ACK (RFC 3706), INITIAL-CONTACT, and our
//! protected notifications.

use super::{seal::open_hashed, Host, IkeError, IkeEvent, IkeSa, State};
use crate::ike::{
    consts::*,
    keys,
    message::{self, split, Chain, Delete, Header, Notify},
};

impl IkeSa {
    pub(super) fn informational(
        &mut self,
        h: &Header,
        msg: &[u8],
        host: &mut dyn Host,
    ) -> Result<(), IkeError> {
        let State::Up(up) = &self.state else {
            return Err(IkeError::Unexpected);
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let mid = h.message_id;
        let iv = keys::exchange_iv(hash, cipher.block(), &up.phase1_iv, mid);
        let (plain, _) = open_hashed(up, &iv, h, msg, &[])?;
        let (payloads, _) = split(h.next, &plain).map_err(|_| IkeError::Malformed)?;
        let cookies: Vec<u8> = [self.icookie, self.rcookie].concat();
        for p in &payloads[1..] {
            match p.kind {
                PL_NOTIFY => {
                    let n = Notify::decode(p.body).map_err(|_| IkeError::Malformed)?;
                    match n.kind {
                        N_R_U_THERE if n.data.len() == 4 => {
                            let body =
                                message::notify(PROTO_ISAKMP, &cookies, N_R_U_THERE_ACK, n.data);
                            self.send_informational(PL_NOTIFY, &body, host);
                            self.events.push_back(IkeEvent::Alive);
                        }
                        N_R_U_THERE_ACK => self.events.push_back(IkeEvent::Alive),
                        N_INITIAL_CONTACT => self.events.push_back(IkeEvent::InitialContact),
                        _ => {}
                    }
                }
                PL_DELETE => {
                    let d = Delete::decode(p.body).map_err(|_| IkeError::Malformed)?;
                    match d.protocol {
                        PROTO_ESP => {
                            for spi in d.spis.iter().filter_map(|s| <[u8; 4]>::try_from(*s).ok()) {
                                self.events.push_back(IkeEvent::DeleteChild {
                                    spi: u32::from_be_bytes(spi),
                                });
                            }
                        }
                        PROTO_ISAKMP if d.spis.contains(&cookies.as_slice()) => {
                            self.die("the client deleted it");
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends one protected Informational message carrying `kind`/`body`.
    pub(super) fn send_informational(&mut self, kind: u8, body: &[u8], host: &mut dyn Host) {
        let State::Up(up) = &self.state else {
            return;
        };
        let (cipher, hash) = (up.algs.cipher, up.algs.hash);
        let mut mid = [0u8; 4];
        while mid == [0; 4] {
            host.random(&mut mid);
        }
        let mid = u32::from_be_bytes(mid);
        let mut rest = Chain::default();
        rest.add(kind, body);
        let h = hash.prf(&up.keys.a, &[&mid.to_be_bytes(), &rest.bytes]);
        let c = rest.prepend(PL_HASH, &h);
        let iv = keys::exchange_iv(hash, cipher.block(), &up.phase1_iv, mid);
        let (m, _) = self.sealed(cipher, &up.keys.enc, &iv, EXCH_INFO, mid, &c);
        self.out.push_back(m);
    }

    pub(super) fn notify_protected(&mut self, kind: u16, host: &mut dyn Host) {
        let body = message::notify(PROTO_ESP, &[], kind, &[]);
        self.send_informational(PL_NOTIFY, &body, host);
    }

    /// Tells the client an ESP SA is gone (named by our inbound SPI).
    pub fn delete_child(&mut self, spi_in: u32, host: &mut dyn Host) {
        let spi = spi_in.to_be_bytes();
        let body = message::delete(PROTO_ESP, &[&spi]);
        self.send_informational(PL_DELETE, &body, host);
    }
}
