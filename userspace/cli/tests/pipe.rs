//! Output into a pipe whose reader is gone (`c2wall ... | head`) ends the
//! command quietly, by SIGPIPE as Unix tools do, never with a panic.

use std::os::unix::process::ExitStatusExt;

#[test]
fn a_closed_pipe_ends_the_command_without_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2wall"))
        .args(["feed", "formats"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
