//! The subscribe loop: one agent's stream. A control frame with the kill
//! switch first, then the plan (snapshot or missed deltas), then live
//! deltas, kill-switch changes and heartbeats until the agent goes or falls
//! too far behind.

use std::sync::Arc;

use bytes::Bytes;
use c2wall_proto::v1 as pb;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::fanout::Fanout;
use super::frame;
use super::plan::{plan, Plan, Position};
use super::reports::check_agent_id;
use crate::core::now;
use crate::service::{blocking, Service};

pub async fn subscribe(
    svc: &Service,
    fanout: Arc<Fanout>,
    req: Request<pb::SubscribeRequest>,
) -> Result<Response<ReceiverStream<Result<Bytes, Status>>>, Status> {
    check_agent_id(&req, &req.get_ref().agent_id)?;
    let r = req.into_inner();
    let coord = svc.coord.clone();
    let (plan, plan_version, mut live) = {
        let (c, r) = (coord.clone(), r.clone());
        blocking(move || {
            let from = Position {
                lineage: &r.lineage,
                version: r.version,
                digest: &r.digest,
                force_snapshot: r.snapshot,
            };
            plan(&c, &fanout, &from)
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
                        last = version;
                        for f in frames.iter() {
                            if !send(Ok(f.clone())).await {
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
                    if !send(Ok(frame::heartbeat(coord.latest_version(), now()))).await {
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
