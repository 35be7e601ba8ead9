//! Builds the XDP programs for bpfel-unknown-none and places the objects in
//! OUT_DIR, where src/loader.rs embeds them.
//!
//! The eBPF build uses Debian's rustc (1.96, LLVM 22) with its prebuilt `core` for
//! the BPF target: see README "Build route". aya-build runs it through
//! `rustup run <toolchain>`, and rustup accepts a directory as toolchain, so we
//! make one here that links to Debian's binaries (nothing is downloaded).
use std::{env, fs, os::unix::fs::symlink, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let toolchain = out.join("bpf-toolchain");
    let bin = toolchain.join("bin");
    fs::create_dir_all(&bin)?;
    for tool in ["cargo", "rustc", "rustdoc"] {
        let src = PathBuf::from("/usr/bin").join(tool);
        let dst = bin.join(tool);
        let _ = fs::remove_file(&dst);
        symlink(&src, &dst)?;
    }
    if env::var_os("AYA_BUILD_SKIP").is_none()
        && !PathBuf::from("/usr/lib/rustlib/bpfel-unknown-none").exists()
    {
        anyhow::bail!(
            "the BPF target's core library is missing (/usr/lib/rustlib/bpfel-unknown-none): \
             run `scripts/setup.sh` as root first, or set AYA_BUILD_SKIP=1 to build without the XDP object"
        );
    }
    let toolchain = toolchain
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("OUT_DIR is not UTF-8"))?
        .to_owned();
    let package = aya_build::Package {
        name: "c2wall-xdp",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../ebpf/xdp"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain))
}
