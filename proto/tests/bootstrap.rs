//! Regenerates the gRPC code and fails if the committed copy differs. On a
//! difference the fresh code is written in place, so `cargo test` then `git
//! diff` shows it; commit it with the .proto change.

use std::{fs, path::PathBuf};

#[test]
fn generated_code_is_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["c2wall/v1/c2wall.proto"], [&root]).expect("parse the .proto");
    let out = std::env::temp_dir().join(format!("c2wall-proto-{}", std::process::id()));
    fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)
        .expect("generate");
    let fresh = fs::read_to_string(out.join("c2wall.v1.rs")).unwrap();
    fs::remove_dir_all(&out).unwrap();
    let committed_path = root.join("src/generated/c2wall.v1.rs");
    let committed = fs::read_to_string(&committed_path).unwrap_or_default();
    if fresh != committed {
        fs::write(&committed_path, &fresh).unwrap();
        panic!(
            "{} was out of date with the .proto and has been regenerated; review and commit it",
            committed_path.display()
        );
    }
}
