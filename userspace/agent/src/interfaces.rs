//! Putting the program on every configured interface (or adopting what is
//! there), naming their counter slots, and letting go of interfaces that are
//! no longer configured.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use aya::Ebpf;
use c2wall_agent::{
    attach, config::Settings, dataplane::assign_iface_slot, engine::Engine, kernel::KernelMaps,
    loader, metrics::Metrics,
};

/// Attaches to each interface; returns (interface, mode) for each.
pub fn hold(
    ebpf: &mut Ebpf,
    settings: &Settings,
    engine: &mut Engine<KernelMaps>,
    metrics: &Metrics,
    iface_names: &Arc<Mutex<HashMap<u32, String>>>,
) -> Result<Vec<(String, &'static str)>> {
    let mut attached = Vec::new();
    let plan = attach::Plan {
        hook: settings.hook,
        attach: settings.attach,
        xdp_mode: settings.xdp_mode,
    };
    for iface in &settings.interfaces {
        let a = attach::attach(ebpf, &settings.paths, iface, plan)?;
        attached.push((a.interface.clone(), a.mode));
        tracing::info!(interface = %a.interface, xdp_mode = a.mode, adopted = a.adopted, "attached");
        metrics
            .attached
            .with_label_values(&[&a.interface, a.mode])
            .set(1);
    }
    for iface in &settings.interfaces {
        let idx = loader::interface_index(iface)?;
        match assign_iface_slot(engine.applier.dataplane_mut(), idx) {
            Ok(Some(slot)) => {
                iface_names
                    .lock()
                    .expect("lock")
                    .insert(slot, iface.clone());
            }
            Ok(None) => {
                tracing::warn!(interface = %iface, "no counter slot left; counted as `other`")
            }
            Err(e) => tracing::warn!(interface = %iface, error = %e, "assigning a counter slot"),
        }
    }
    for gone in attach::detach_stale(&settings.paths, &settings.interfaces) {
        tracing::warn!(interface = %gone, "detached from an interface that is no longer configured");
    }
    Ok(attached)
}
