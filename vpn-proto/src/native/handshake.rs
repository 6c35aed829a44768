//! The TCP handshake, both ends, sans-IO: bytes in (`handle_bytes`), one
//! step out at a time (`poll`). Four frames: CLIENT_INIT (Noise NKpsk0
//! `-> psk, e, es` to the gateway's pinned static key), SERVER_INIT (`<- e,
//! ee`), AUTH (user and password, encrypted: sent only once SERVER_INIT has
//! proved the gateway holds the pinned key and the PSK), WELCOME or REJECT.
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{
    consts::*,
    crypto::{self, AeadKey, Cipher, GatewayKey, KeyPair, StaticKey},
    messages::{self, AuthRequest, Reason, Welcome, WireError},
};

const NOISE_MAX: usize = 65535;

/// Data-channel parameters both ends hold after a successful handshake.
#[derive(Debug)]
pub struct Keys {
    pub cipher: Cipher,
    /// Epoch-0 data keys, from this side's point of view.
    pub data: KeyPair,
}

fn prologue(header: &[u8]) -> Vec<u8> {
    [PROLOGUE_LABEL, header].concat()
}

fn split(hs: &mut snow::HandshakeState, client: bool) -> (KeyPair, KeyPair) {
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    crypto::session_keys(&i2r, &r2i, client)
}

/// An encrypted frame: type byte in clear (and authenticated), then the
/// ciphertext under the control key with nonce 0 (one frame per direction).
fn seal_frame(kind: u8, key: &[u8; 32], cipher: Cipher, plain: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(plain);
    AeadKey::new(cipher, key).seal(0, &[kind], &mut body, 1);
    messages::frame(&body)
}

fn open_frame(body: &mut [u8], key: &[u8; 32], cipher: Cipher) -> Option<Vec<u8>> {
    let kind = body[0];
    let n = AeadKey::new(cipher, key).open(0, &[kind], &mut body[1..])?;
    Some(body[1..1 + n].to_vec())
}

// ---- Client ------------------------------------------------------------------

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// The gateway refused in clear (it could not or would not set up keys).
    #[error("the gateway refused the handshake: {0}")]
    Refused(String),
    /// The gateway authenticated us as a peer but refused the session.
    #[error("the gateway rejected the login: {}{}", .0.describe(), detail(.1))]
    Rejected(Reason, String),
    /// The gateway's answer did not authenticate: it does not hold the
    /// pinned key, or not our PSK. Nothing secret was sent.
    #[error("the gateway did not prove it holds the pinned gateway key {0} and our pre-shared key; not sending the password")]
    Crypto(String),
    /// The gateway says its key is another than the one we pinned.
    #[error("gateway key mismatch: pinned {pinned}, but the gateway's key is {presented}; not sending the password")]
    KeyMismatch { pinned: String, presented: String },
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// " (MESSAGE)" when the gateway said more than the reason.
fn detail(msg: &str) -> String {
    if msg.is_empty() {
        String::new()
    } else {
        format!(" ({msg})")
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

pub enum ClientStep {
    /// Send these bytes to the gateway.
    Send(Vec<u8>),
    Established(Keys, Welcome),
}

enum ClientState {
    AwaitServerInit(Box<snow::HandshakeState>),
    AwaitWelcome { control: KeyPair, keys: Keys },
    Done,
}

pub struct ClientHandshake {
    state: ClientState,
    buf: Vec<u8>,
    auth: AuthRequest,
    /// Fingerprint of the pinned gateway key, for errors.
    pinned: String,
}

/// The prefix before a gateway's key fingerprint in its clear ERROR frame.
const KEY_IN_ERROR: &str = "this gateway's key is ";

impl ClientHandshake {
    /// Starts a handshake with the gateway whose static public key is
    /// `gateway_key`; returns the engine and the CLIENT_INIT bytes to send.
    pub fn start(
        psk: &[u8; 32],
        gateway_key: &[u8; 32],
        auth: AuthRequest,
        ciphers: &[Cipher],
    ) -> (ClientHandshake, Vec<u8>) {
        Self::begin(psk, gateway_key, auth, ciphers, None)
    }

    /// Test vectors only: a fixed ephemeral key makes the transcript reproducible.
    #[cfg(test)]
    pub(crate) fn start_with_ephemeral(
        psk: &[u8; 32],
        gateway_key: &[u8; 32],
        auth: AuthRequest,
        ciphers: &[Cipher],
        ephemeral: &[u8; 32],
    ) -> (ClientHandshake, Vec<u8>) {
        Self::begin(psk, gateway_key, auth, ciphers, Some(ephemeral))
    }

    fn begin(
        psk: &[u8; 32],
        gateway_key: &[u8; 32],
        auth: AuthRequest,
        ciphers: &[Cipher],
        fixed_ephemeral: Option<&[u8; 32]>,
    ) -> (ClientHandshake, Vec<u8>) {
        let header = messages::client_init_header();
        let mut hs = crypto::noise_handshake(
            psk,
            &prologue(&header),
            GatewayKey::Pinned(gateway_key),
            fixed_ephemeral,
        )
        .expect("valid Noise setup");
        let payload = messages::encode_ciphers(TLV_CIPHERS, ciphers);
        let mut msg = vec![0u8; NOISE_MAX];
        let n = hs
            .write_message(&payload, &mut msg)
            .expect("first Noise message fits");
        let body = [&header[..], &msg[..n]].concat();
        let engine = ClientHandshake {
            state: ClientState::AwaitServerInit(Box::new(hs)),
            buf: Vec::new(),
            auth,
            pinned: crypto::fingerprint(gateway_key),
        };
        (engine, messages::frame(&body))
    }

    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next step, once a whole frame has arrived.
    pub fn poll(&mut self) -> Result<Option<ClientStep>, ClientError> {
        let Some(mut body) = messages::take_frame(&mut self.buf)? else {
            return Ok(None);
        };
        if body[0] == FRAME_ERROR {
            let msg = String::from_utf8_lossy(body.get(2..).unwrap_or_default()).into_owned();
            self.state = ClientState::Done;
            // A gateway that could not read our hello names its key: if it
            // is not the one we pinned, say so (the words are unauthenticated,
            // but nothing secret depends on them).
            if let Some(fp) = msg.split(KEY_IN_ERROR).nth(1) {
                let presented: String = fp
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit() || *c == ':')
                    .collect();
                if !presented.is_empty() && presented != self.pinned {
                    return Err(ClientError::KeyMismatch {
                        pinned: self.pinned.clone(),
                        presented,
                    });
                }
            }
            return Err(ClientError::Refused(msg));
        }
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::AwaitServerInit(mut hs) if body[0] == FRAME_SERVER_INIT => {
                let mut payload = vec![0u8; NOISE_MAX];
                let n = hs
                    .read_message(&body[1..], &mut payload)
                    .map_err(|_| ClientError::Crypto(self.pinned.clone()))?;
                let cipher = messages::decode_ciphers(&payload[..n], TLV_CIPHER)?
                    .first()
                    .copied()
                    .ok_or_else(|| ClientError::Protocol("no cipher chosen".into()))?;
                let (control, data) = split(&mut hs, true);
                let frame = seal_frame(FRAME_AUTH, &control.send, cipher, &self.auth.encode());
                self.state = ClientState::AwaitWelcome {
                    control,
                    keys: Keys { cipher, data },
                };
                Ok(Some(ClientStep::Send(frame)))
            }
            ClientState::AwaitWelcome { control, keys }
                if body[0] == FRAME_WELCOME || body[0] == FRAME_REJECT =>
            {
                let plain = open_frame(&mut body, &control.recv, keys.cipher)
                    .ok_or_else(|| ClientError::Crypto(self.pinned.clone()))?;
                if body[0] == FRAME_REJECT {
                    let (reason, msg) = messages::decode_reason(&plain)?;
                    return Err(ClientError::Rejected(reason, msg));
                }
                let welcome = Welcome::decode(&plain)?;
                Ok(Some(ClientStep::Established(keys, welcome)))
            }
            _ => Err(ClientError::Protocol(format!(
                "unexpected frame type {:#04x}",
                body[0]
            ))),
        }
    }
}

// ---- Server ------------------------------------------------------------------

/// Why a handshake failed, and the clear ERROR frame to send before closing.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ServerError {
    pub what: String,
    pub reply: Option<Vec<u8>>,
}

fn refuse(code: u8, what: impl Into<String>, tell: &str) -> ServerError {
    ServerError {
        what: what.into(),
        reply: Some(messages::frame(&messages::error_body(code, tell))),
    }
}

pub enum ServerStep {
    Send(Vec<u8>),
    /// Check these credentials, then call `accept` or `reject`.
    Authenticate(AuthRequest),
}

enum ServerState {
    AwaitClientInit,
    AwaitAuth { control: KeyPair, keys: Keys },
    Decide { control: KeyPair, keys: Keys },
    Done,
}

pub struct ServerHandshake {
    state: ServerState,
    buf: Vec<u8>,
    psk: Zeroizing<[u8; 32]>,
    /// The gateway's static key (prepared once for every handshake).
    key: Arc<StaticKey>,
    ciphers: Vec<Cipher>,
    fixed_ephemeral: Option<[u8; 32]>,
}

impl ServerHandshake {
    /// `key`: the gateway's static private key; `ciphers`: what the
    /// gateway allows, most preferred first.
    pub fn new(psk: &[u8; 32], key: &Arc<StaticKey>, ciphers: &[Cipher]) -> ServerHandshake {
        ServerHandshake {
            state: ServerState::AwaitClientInit,
            buf: Vec::new(),
            psk: Zeroizing::new(*psk),
            key: key.clone(),
            ciphers: ciphers.to_vec(),
            fixed_ephemeral: None,
        }
    }

    /// Test vectors only: a fixed ephemeral key makes the transcript reproducible.
    #[cfg(test)]
    pub(crate) fn with_fixed_ephemeral(mut self, e: [u8; 32]) -> ServerHandshake {
        self.fixed_ephemeral = Some(e);
        self
    }

    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn poll(&mut self) -> Result<Option<ServerStep>, ServerError> {
        let body = match messages::take_frame(&mut self.buf) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(refuse(
                    ERROR_PROTOCOL,
                    format!("bad frame: {e}"),
                    "bad frame",
                ))
            }
        };
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::AwaitClientInit => self.client_init(&body).map(Some),
            ServerState::AwaitAuth { control, keys } if body[0] == FRAME_AUTH => {
                let mut body = body;
                let Some(plain) = open_frame(&mut body, &control.recv, keys.cipher) else {
                    return Err(refuse(
                        ERROR_PROTOCOL,
                        "AUTH did not authenticate",
                        "bad frame",
                    ));
                };
                let auth = AuthRequest::decode(&plain).map_err(|e| {
                    refuse(
                        ERROR_PROTOCOL,
                        format!("malformed AUTH: {e}"),
                        "malformed AUTH",
                    )
                })?;
                self.state = ServerState::Decide { control, keys };
                Ok(Some(ServerStep::Authenticate(auth)))
            }
            _ => Err(refuse(
                ERROR_PROTOCOL,
                format!("unexpected frame type {:#04x}", body[0]),
                "unexpected frame",
            )),
        }
    }

    fn client_init(&mut self, body: &[u8]) -> Result<ServerStep, ServerError> {
        let header = messages::client_init_header();
        if body.len() < header.len() || body[0] != FRAME_CLIENT_INIT || body[1..5] != MAGIC {
            return Err(refuse(
                ERROR_PROTOCOL,
                "not a vpn-ctl client (bad magic)",
                "bad magic",
            ));
        }
        let (vmin, vmax) = (body[5], body[6]);
        if vmax < VERSION_MIN || vmin > VERSION_MAX {
            return Err(refuse(
                ERROR_VERSION,
                format!(
                    "client speaks versions {vmin}-{vmax}, we speak {VERSION_MIN}-{VERSION_MAX}"
                ),
                &format!(
                    "unsupported protocol version (gateway speaks {VERSION_MIN}-{VERSION_MAX})"
                ),
            ));
        }
        let mut hs = crypto::noise_handshake(
            &self.psk,
            &prologue(&body[..header.len()]),
            GatewayKey::Private(&self.key),
            self.fixed_ephemeral.as_ref(),
        )
        .expect("valid Noise setup");
        let mut payload = vec![0u8; NOISE_MAX];
        let n = hs
            .read_message(&body[header.len()..], &mut payload)
            .map_err(|_| {
                refuse(
                    ERROR_HANDSHAKE,
                    "handshake did not authenticate (wrong pre-shared key, or the client pinned another gateway key)",
                    &format!(
                        "handshake failed: the pre-shared key does not match, or you pinned another gateway key ({KEY_IN_ERROR}{})",
                        crypto::fingerprint(self.key.public())
                    ),
                )
            })?;
        let offered = messages::decode_ciphers(&payload[..n], TLV_CIPHERS)
            .map_err(|e| refuse(ERROR_PROTOCOL, format!("bad hello: {e}"), "bad hello"))?;
        let Some(cipher) = self.ciphers.iter().copied().find(|c| offered.contains(c)) else {
            return Err(refuse(
                ERROR_PROTOCOL,
                "no common cipher",
                "no common cipher",
            ));
        };
        let reply = messages::encode_ciphers(TLV_CIPHER, &[cipher]);
        let mut msg = vec![0u8; NOISE_MAX];
        let m = hs
            .write_message(&reply, &mut msg)
            .expect("second Noise message fits");
        let (control, data) = split(&mut hs, false);
        self.state = ServerState::AwaitAuth {
            control,
            keys: Keys { cipher, data },
        };
        let body = [&[FRAME_SERVER_INIT][..], &msg[..m]].concat();
        Ok(ServerStep::Send(messages::frame(&body)))
    }

    /// Grants the session: the WELCOME frame to send and the data keys.
    /// Panics if called before `Authenticate` (a caller bug, not input).
    pub fn accept(self, welcome: &Welcome) -> (Vec<u8>, Keys) {
        let ServerState::Decide { control, keys } = self.state else {
            panic!("accept() before Authenticate");
        };
        let frame = seal_frame(FRAME_WELCOME, &control.send, keys.cipher, &welcome.encode());
        (frame, keys)
    }

    /// Refuses the session with a reason the client can show (encrypted).
    pub fn reject(self, reason: Reason, msg: &str) -> Vec<u8> {
        match self.state {
            ServerState::Decide { control, keys } => seal_frame(
                FRAME_REJECT,
                &control.send,
                keys.cipher,
                &messages::encode_reason(reason, msg),
            ),
            _ => messages::frame(&messages::error_body(ERROR_PROTOCOL, reason.describe())),
        }
    }
}
