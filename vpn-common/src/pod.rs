//! `aya::Pod` for the map types (userspace only).
use crate::maps::{DataplaneConfig, SessionEntry, SessionStats, TunnelKey};

// SAFETY: all of them are #[repr(C)], made of integers and byte arrays only, with no
// implicit padding (checked by the size assertions next to their definitions).
unsafe impl aya::Pod for DataplaneConfig {}
unsafe impl aya::Pod for TunnelKey {}
unsafe impl aya::Pod for SessionEntry {}
unsafe impl aya::Pod for SessionStats {}
unsafe impl aya::Pod for crate::maps::GreSeq {}
unsafe impl aya::Pod for crate::maps::ForwardIf {}
unsafe impl aya::Pod for crate::maps::FibSlot {}
