//! Child processes that are killed when the test ends, and the agent binary.

use std::{
    path::PathBuf,
    process::{Child, Command},
};

/// A child process killed (SIGKILL) on drop.
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guarded {
    pub fn spawn(mut c: Command) -> Self {
        Guarded(c.spawn().unwrap_or_else(|e| panic!("spawning {c:?}: {e}")))
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, sig) };
    }
}

/// Runs `c` to its end: whether it succeeded, and its stdout then its
/// stderr (for assertion messages and for output checks alike).
pub fn capture(c: &mut Command) -> (bool, String) {
    let out = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Path of a workspace binary built next to the running executable: a
/// test's (target/<profile>/deps/test-xxxx -> target/<profile>/NAME) or a
/// bench binary's (target/<profile>/bench -> target/<profile>/NAME).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let here = exe.parent().expect("exe dir");
    let dir = if here.ends_with("deps") {
        here.parent().expect("target dir")
    } else {
        here
    };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built; run the tests through `cargo test --workspace` (or scripts/test.sh)",
        p.display()
    );
    p
}

/// Removes a bpffs pin directory on drop (detaching anything pinned there).
pub struct PinDir(pub PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(workspace_bin("c2wall-agent"))
                .arg("detach")
                .arg("--pin-dir")
                .arg(&self.0)
                .output();
        }
    }
}
