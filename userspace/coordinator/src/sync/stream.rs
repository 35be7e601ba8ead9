//! The subscribe loop: one agent's stream. A control frame with the kill
//! switch first, then the plan (snapshot or missed deltas), then live
//! deltas, kill-switch changes and heartbeats until the agent goes or falls
//! too far behind. With a staged rollout the agent's stage (from its
//! labels) caps the versions it is sent; when the cap rises, what it missed
//! comes as one net delta.

use std::sync::Arc;

use bytes::Bytes;
use c2wall_proto::v1 as pb;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::fanout::Fanout;
use super::frame::{self, Detail};
use super::plan::{plan, Plan, Position};
use super::reports::check_agent_id;
use super::squash::catch_up_frames;
use crate::core::{now, Coordinator};
use crate::error::CoordError;
use crate::rollout::Rollout;
use crate::service::{blocking, Service};

/// The net delta from `from` to `to`, read from the store.
async fn catch_up(coord: &Arc<Coordinator>, from: u64, to: u64) -> Result<Vec<Bytes>, Status> {
    let c = coord.clone();
    blocking(move || {
        let encoded = c.reader.lock().expect("lock").deltas_after(from)?;
        let encoded = encoded.ok_or_else(|| {
            CoordError::Precondition(format!(
                "version {from} is older than the kept log; resubscribe for a snapshot"
            ))
        })?;
        catch_up_frames(&encoded, from, to)
    })
    .await
}

pub async fn subscribe(
    svc: &Service,
    fanout: Arc<Fanout>,
    req: Request<pb::SubscribeRequest>,
) -> Result<Response<ReceiverStream<Result<Bytes, Status>>>, Status> {
    check_agent_id(&req, &req.get_ref().agent_id)?;
    let r = req.into_inner();
    let mut labels = c2wall_model::Labels::new();
    for (k, v) in &r.labels {
        c2wall_model::labels::check_label(k, v)
            .map_err(|e| Status::invalid_argument(format!("labels: {e}")))?;
        labels.insert(k.clone(), v.clone());
    }
    let stage = svc.rollout.stage_of(&r.agent_id, &labels);
    let mut ceilings = svc.rollout.watch();
    let cap = move |c: &[u64]| Rollout::cap(c, stage);
    let first_cap = cap(&ceilings.borrow_and_update());
    let coord = svc.coord.clone();
    let (plan, plan_version, mut live) = {
        let (c, r) = (coord.clone(), r.clone());
        blocking(move || {
            let from = Position {
                lineage: &r.lineage,
                version: r.version,
                digest: &r.digest,
                force_snapshot: r.snapshot,
                detail: Detail::asked(r.entries_only),
            };
            plan(&c, &fanout, &from, stage.map(|_| first_cap))
        })
        .await?
    };
    let (tx, rx) = mpsc::channel(svc.stream_buffer);
    let (heartbeat, send_timeout) = (svc.heartbeat, svc.send_timeout);
    tokio::spawn(async move {
        let _connected = coord.connect(&r.agent_id);
        let send = |m: Result<Bytes, Status>| {
            let tx = tx.clone();
            async move {
                matches!(
                    tokio::time::timeout(send_timeout, tx.send(m)).await,
                    Ok(Ok(()))
                )
            }
        };
        let mut modes = coord.modes();
        let mut mode = modes.borrow_and_update().for_agent(&r.agent_id);
        if !send(Ok(frame::control(mode))).await {
            return;
        }
        let mut last = plan_version;
        let frames: Vec<Bytes> = match plan {
            Plan::Snapshot(chunks) => chunks.iter().cloned().collect(),
            Plan::Deltas(deltas) => deltas,
        };
        for f in frames {
            if !send(Ok(f)).await {
                return;
            }
        }
        let mut tick = tokio::time::interval(heartbeat);
        loop {
            tokio::select! {
                d = live.recv() => match d {
                    Ok((version, frames)) if version > last => {
                        let held = cap(&ceilings.borrow());
                        if version > held {
                            continue;
                        }
                        let frames = if version == last + 1 {
                            frames.as_ref().clone()
                        } else {
                            // Versions held back before are released now.
                            match catch_up(&coord, last, version).await {
                                Ok(f) => f,
                                Err(e) => {
                                    let _ = send(Err(e)).await;
                                    return;
                                }
                            }
                        };
                        last = version;
                        for f in frames {
                            if !send(Ok(f)).await {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let _ = send(Err(Status::resource_exhausted(format!(
                            "subscriber fell {n} versions behind; resubscribe from your version"
                        )))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
                changed = ceilings.changed(), if stage.is_some() => {
                    if changed.is_err() {
                        return;
                    }
                    let to = cap(&ceilings.borrow_and_update()).min(coord.latest_version());
                    if to > last {
                        match catch_up(&coord, last, to).await {
                            Ok(frames) => {
                                last = to;
                                for f in frames {
                                    if !send(Ok(f)).await {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = send(Err(e)).await;
                                return;
                            }
                        }
                    }
                }
                changed = modes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now_mode = modes.borrow_and_update().for_agent(&r.agent_id);
                    if now_mode != mode {
                        mode = now_mode;
                        if !send(Ok(frame::control(mode))).await {
                            return;
                        }
                    }
                }
                _ = tick.tick() => {
                    // The latest this agent may have: a held agent is not behind.
                    let latest = coord.latest_version().min(cap(&ceilings.borrow()));
                    if !send(Ok(frame::heartbeat(latest, now()))).await {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let mut reply = Response::new(ReceiverStream::new(rx));
    reply.metadata_mut().insert(
        c2wall_model::wire::LATEST_VERSION_HEADER,
        plan_version.into(),
    );
    Ok(reply)
}
