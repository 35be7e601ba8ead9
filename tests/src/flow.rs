//! A steady UDP flow across the topology while an agent restarts, upgrades or
//! changes hooks: what it delivers per destination shows any gap.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::topo::Topo;

/// Sends to `dsts` in turn from the subscriber until stopped; counts, per
/// destination, what the network side receives.
pub struct Flow {
    stop: Arc<AtomicBool>,
    sent: std::thread::JoinHandle<usize>,
    received: Vec<std::thread::JoinHandle<usize>>,
}

impl Flow {
    pub fn start(topo: &Topo, dsts: &[&str]) -> Flow {
        let stop = Arc::new(AtomicBool::new(false));
        let addrs: Vec<SocketAddr> = dsts
            .iter()
            .map(|d| SocketAddr::new(d.parse().unwrap(), 7000))
            .collect();
        let received = addrs
            .iter()
            .map(|a| {
                let (a, stop) = (*a, stop.clone());
                topo.net.run(move || {
                    let s = UdpSocket::bind(a).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut n = 0;
                    let mut buf = [0u8; 16];
                    loop {
                        match s.recv(&mut buf) {
                            Ok(_) => n += 1,
                            Err(_) if stop.load(Ordering::Relaxed) => return n,
                            Err(_) => {}
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let s2 = stop.clone();
        let sent = topo.sub.run(move || {
            let s = UdpSocket::bind("198.51.100.10:0").unwrap();
            let mut n = 0;
            while !s2.load(Ordering::Relaxed) {
                for a in &addrs {
                    let _ = s.send_to(b"x", a);
                }
                n += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            n
        });
        Flow {
            stop,
            sent,
            received,
        }
    }

    fn finish(self) -> (usize, Vec<usize>) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sent.join().unwrap();
        // Let in-flight packets land before the receivers give up.
        std::thread::sleep(Duration::from_millis(300));
        (
            sent,
            self.received
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect(),
        )
    }

    /// Stops the flow and checks that it saw no gap while `what` happened:
    /// more than `min_rounds` rounds sent, no packet to the first (listed)
    /// destination delivered, more than 95% of those to the second (benign)
    /// one. Prints the figures.
    pub fn finish_without_gap(self, what: &str, min_rounds: usize) {
        let (sent, got) = self.finish();
        assert!(sent > min_rounds, "flow too short: {sent}");
        assert_eq!(got[0], 0, "no listed packet delivered {what} ({sent} sent)");
        assert!(
            got[1] as f64 > sent as f64 * 0.95,
            "benign flow kept going {what}: {} of {sent}",
            got[1]
        );
        eprintln!(
            "{what}: {sent} rounds, listed delivered {}, benign {}",
            got[0], got[1]
        );
    }
}
