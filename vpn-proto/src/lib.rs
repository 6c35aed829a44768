//! Sans-IO protocol engines: they take bytes and the current time and return
//! bytes to send, events and their next deadline. No sockets, no clocks, so
//! tests drive both ends of a protocol on a virtual clock.
pub mod codec;
pub mod dhcp;
pub mod esp;
/// Tests of this crate and of vpn-ctl (the file parsers) write fuzz seeds.
#[doc(hidden)]
pub mod fuzz_seed;
pub mod ike;
pub mod l2tp;
pub mod native;
pub mod offload;
pub mod ppp;
pub mod pptp;
pub mod radius;
pub mod replay;

/// Fails to compile if one of the types implements `Clone`: types holding
/// keys or passwords must not be copied around silently (each copy is one
/// more place to wipe). Two blanket impls of a trait are ambiguous exactly
/// when the type is `Clone` (the trick of static_assertions'
/// `assert_not_impl_any!`).
#[macro_export]
macro_rules! assert_not_clone {
    ($($t:ty),+ $(,)?) => {
        const _: fn() = || {
            trait AmbiguousIfClone<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfClone<()> for T {}
            struct IsClone;
            impl<T: ?Sized + Clone> AmbiguousIfClone<IsClone> for T {}
            $( let _ = <$t as AmbiguousIfClone<_>>::some_item; )+
        };
    };
}

assert_not_clone!(
    native::crypto::KeyPair,
    native::messages::AuthRequest,
    ppp::mschap::NtHash,
    ppp::mschap::MasterKey,
    ppp::mppe::Mppe,
);
