//! MS-CHAPv2 (RFC 2759) and the MPPE keys derived from it (RFC 3079):
//! the authenticator's side of the computation. Checked against both RFCs'
//! test vectors.
use des::cipher::{BlockEncrypt as _, KeyInit as _};
use md4::{Digest as _, Md4};
use ring::digest;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

/// NtPasswordHash: MD4 of the password in UTF-16LE. All the authenticator
/// needs to check MS-CHAPv2 (and a PAP password), so the gateway stores this
/// instead of the password. It is password-equivalent for MS-CHAPv2: kept
/// out of logs (no `Debug` of the bytes), not `Clone`, wiped on drop.
pub struct NtHash([u8; 16]);

impl NtHash {
    pub fn of_password(password: &str) -> NtHash {
        let unicode: Zeroizing<Vec<u8>> =
            Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
        NtHash(Md4::digest(&*unicode).into())
    }

    pub fn from_bytes(b: [u8; 16]) -> NtHash {
        NtHash(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Constant-time comparison (PAP checks a given password this way).
    pub fn matches(&self, other: &NtHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }

    /// PasswordHashHash: MD4 of the hash, for the proofs and MPPE keys.
    fn hash_hash(&self) -> Zeroizing<[u8; 16]> {
        Zeroizing::new(Md4::digest(self.0).into())
    }
}

impl Drop for NtHash {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for NtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtHash(..)")
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// ChallengeHash: the first 8 bytes of SHA1(peer challenge, authenticator
/// challenge, user name).
pub fn challenge_hash(peer: &[u8; 16], auth: &[u8; 16], user: &str) -> [u8; 8] {
    let h = sha1(&[peer, auth, user.as_bytes()]);
    h[..8].try_into().expect("8 bytes")
}

/// DES with a 7-byte key spread over 8 bytes (parity bits ignored by DES).
fn des_encrypt(key7: &[u8], block: &[u8; 8]) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[0] = key7[0];
    k[1] = (key7[0] << 7) | (key7[1] >> 1);
    k[2] = (key7[1] << 6) | (key7[2] >> 2);
    k[3] = (key7[2] << 5) | (key7[3] >> 3);
    k[4] = (key7[3] << 4) | (key7[4] >> 4);
    k[5] = (key7[4] << 3) | (key7[5] >> 5);
    k[6] = (key7[5] << 2) | (key7[6] >> 6);
    k[7] = key7[6] << 1;
    let cipher = des::Des::new_from_slice(&k).expect("8-byte DES key");
    let mut b = des::cipher::generic_array::GenericArray::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// ChallengeResponse: the 24-byte response to an 8-byte challenge.
fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = Zeroizing::new([0u8; 21]);
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for i in 0..3 {
        out[i * 8..i * 8 + 8].copy_from_slice(&des_encrypt(&z[i * 7..i * 7 + 7], challenge));
    }
    out
}

/// GenerateNTResponse: what a peer that knows the password answers.
pub fn nt_response(auth: &[u8; 16], peer: &[u8; 16], user: &str, hash: &NtHash) -> [u8; 24] {
    challenge_response(&challenge_hash(peer, auth, user), hash.as_bytes())
}

const MAGIC1: &[u8] = b"Magic server to client signing constant";
const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";

/// GenerateAuthenticatorResponse: the "S=<40 hex digits>" the server sends
/// to prove it knows the password too.
pub fn authenticator_response(
    hash: &NtHash,
    nt_response: &[u8; 24],
    peer: &[u8; 16],
    auth: &[u8; 16],
    user: &str,
) -> String {
    let digest = sha1(&[&*hash.hash_hash(), nt_response, MAGIC1]);
    let challenge = challenge_hash(peer, auth, user);
    let digest = sha1(&[&digest, &challenge, MAGIC2]);
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("S={hex}")
}

// ---- RFC 3079 key derivation ---------------------------------------------------

const MASTER_MAGIC: &[u8] = b"This is the MPPE Master Key";
const MAGIC2_KEY: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const MAGIC3_KEY: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0x00; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// The MPPE master key of one login: not `Clone`, never printed, wiped
/// when dropped.
#[derive(PartialEq, Eq)]
pub struct MasterKey([u8; 16]);

impl MasterKey {
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// GetMasterKey (RFC 3079 §3.4).
pub fn master_key(hash: &NtHash, nt_response: &[u8; 24]) -> MasterKey {
    let d = Zeroizing::new(sha1(&[&*hash.hash_hash(), nt_response, MASTER_MAGIC]));
    MasterKey(d[..16].try_into().expect("16 bytes"))
}

/// GetAsymmetricStartKey for the server (the authenticator): its send key
/// and its receive key, `len` bytes each (8 for 40/56-bit, 16 for 128-bit).
pub fn server_start_keys(
    master: &MasterKey,
    len: usize,
) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
    let key = |magic: &[u8]| {
        let d = Zeroizing::new(sha1(&[&master.0, &SHS_PAD1, magic, &SHS_PAD2]));
        Zeroizing::new(d[..len].to_vec())
    };
    (key(MAGIC3_KEY), key(MAGIC2_KEY))
}

/// The authenticator's two 128-bit MPPE start keys: derived here from the
/// master key, or handed over by a RADIUS server (MS-MPPE-Send-Key and
/// MS-MPPE-Recv-Key, RFC 2548). Not `Clone`, wiped on drop.
pub struct StartKeys {
    pub send: [u8; 16],
    pub recv: [u8; 16],
}

impl StartKeys {
    pub fn of_master(master: &MasterKey) -> StartKeys {
        let (send, recv) = server_start_keys(master, 16);
        StartKeys {
            send: send[..].try_into().expect("16 bytes"),
            recv: recv[..].try_into().expect("16 bytes"),
        }
    }
}

impl Drop for StartKeys {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
}

impl std::fmt::Debug for StartKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartKeys(..)")
    }
}

/// GetNewKeyFromSHA (RFC 3078 §7.3): the next session key from the start
/// key and the current one.
pub fn new_key_from_sha(start: &[u8], current: &[u8]) -> Zeroizing<Vec<u8>> {
    let d = Zeroizing::new(sha1(&[start, &SHS_PAD1, current, &SHS_PAD2]));
    Zeroizing::new(d[..start.len()].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    const AUTH: [u8; 16] = [
        0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26, 0x26,
        0x28,
    ];
    const PEER: [u8; 16] = [
        0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33, 0x7C,
        0x7E,
    ];

    /// RFC 2759 §9.2.
    #[test]
    fn rfc2759_test_vectors() {
        assert_eq!(
            hex(NtHash::of_password("clientPass").as_bytes()),
            "44EBBA8D5312B8D611474411F56989AE"
        );
        assert_eq!(
            hex(&challenge_hash(&PEER, &AUTH, "User")),
            "D02E4386BCE91226"
        );
        let nt = nt_response(&AUTH, &PEER, "User", &NtHash::of_password("clientPass"));
        assert_eq!(hex(&nt), "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF");
        assert_eq!(
            authenticator_response(
                &NtHash::of_password("clientPass"),
                &nt,
                &PEER,
                &AUTH,
                "User"
            ),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    /// RFC 3079 §3.5.3 (128-bit keys).
    #[test]
    fn rfc3079_test_vectors() {
        let nt = nt_response(&AUTH, &PEER, "User", &NtHash::of_password("clientPass"));
        let master = master_key(&NtHash::of_password("clientPass"), &nt);
        assert_eq!(hex(master.as_bytes()), "FDECE3717A8C838CB388E527AE3CDD31");
        let (send, _) = server_start_keys(&master, 16);
        assert_eq!(hex(&send), "8B7CDC149B993A1BA118CB153F56DCCB");
        // The initial 128-bit session key is GetNewKeyFromSHA(start, start).
        assert_eq!(
            hex(&new_key_from_sha(&send, &send)),
            "405CB2247A7956E6E211007AE27B22D4"
        );
    }
}
