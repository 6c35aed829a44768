//! Builds the eBPF object with Debian's Rust (which ships a prebuilt `core` for
//! bpfel-unknown-none) and bpf-linker; see docs/toolchain.md.
use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // Fuzz builds (`cargo xtask fuzz`: `--cfg fuzzing`) reach only the file
    // parsers; they get an empty object instead of a second eBPF build.
    if std::env::var_os("CARGO_CFG_FUZZING").is_some() {
        let out = std::env::var("OUT_DIR").context("OUT_DIR")?;
        std::fs::write(std::path::Path::new(&out).join("vpn-ebpf"), [])?;
        return Ok(());
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir).join("../vpn-ebpf");
    let ebpf_dir = ebpf_dir
        .canonicalize()
        .with_context(|| format!("{}", ebpf_dir.display()))?;
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    println!("cargo:rerun-if-changed=../vpn-common/src");
    // aya-ebpf needs `asm_experimental_arch` and vpn-ebpf one inline
    // atomic; allow unstable features for those two crates only.
    // RUSTC_BOOTSTRAP=1 would make aya-build add -Z build-std.
    // SAFETY-free in edition 2021: the build script is single-threaded here.
    std::env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf,vpn_ebpf");
    let toolchain = std::env::var("VPN_EBPF_TOOLCHAIN").unwrap_or_else(|_| "/usr".to_string());
    println!("cargo:rerun-if-env-changed=VPN_EBPF_TOOLCHAIN");
    aya_build::build_ebpf(
        [Package {
            name: "vpn-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}
