//! The AgentSync methods (subscribe, status and sightings reports), served by
//! [`crate::fanout::AgentSyncServer`].

use super::*;

fn control_frame(mode: &str) -> Bytes {
    let m = pb::SyncMessage {
        kind: Some(pb::sync_message::Kind::Control(pb::Control {
            mode: mode.into(),
        })),
    };
    Bytes::from(m.encode_to_vec())
}

fn heartbeat_frame(latest_version: u64) -> Bytes {
    let m = pb::SyncMessage {
        kind: Some(pb::sync_message::Kind::Heartbeat(pb::Heartbeat {
            latest_version,
            server_time: now(),
        })),
    };
    Bytes::from(m.encode_to_vec())
}

/// An agent speaks only as itself: with an `agent` identity (certificate or
/// token) the agent_id it sends must be that identity's name.
fn check_agent_id<T>(req: &Request<T>, claimed: &str) -> Result<(), Status> {
    if claimed.is_empty() {
        return Err(Status::invalid_argument("agent_id: missing"));
    }
    c2wall_model::limits::text("agent_id", claimed, c2wall_model::limits::NAME_BYTES)?;
    let role = req
        .metadata()
        .get(ROLE_HEADER)
        .and_then(|v| v.to_str().ok());
    let who = actor(req);
    if role == Some("agent") && who != claimed {
        return Err(Status::permission_denied(format!(
            "agent_id `{claimed}`: this caller is `{who}`; an agent reports only as itself \
             (leave --agent-id unset to use the certificate's name)"
        )));
    }
    Ok(())
}

/// The AgentSync methods, served by [`crate::fanout::AgentSyncServer`].
impl Service {
    pub async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<ReceiverStream<Result<Bytes, Status>>>, Status> {
        check_agent_id(&req, &req.get_ref().agent_id)?;
        let r = req.into_inner();
        let coord = self.coord.clone();
        let (plan, plan_version, mut live) = {
            let c = coord.clone();
            let (l, v, d, s) = (r.lineage.clone(), r.version, r.digest.clone(), r.snapshot);
            blocking(move || c.subscribe(&l, v, &d, s)).await?
        };
        let (tx, rx) = mpsc::channel(self.stream_buffer);
        let (heartbeat, send_timeout) = (self.heartbeat, self.send_timeout);
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
            if !send(Ok(control_frame(&mode))).await {
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
                            if !send(Ok(control_frame(&mode))).await {
                                return;
                            }
                        }
                    }
                    _ = tick.tick() => {
                        if !send(Ok(heartbeat_frame(coord.latest_version()))).await {
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

    pub async fn report_sightings(
        &self,
        req: Request<pb::SightingsReport>,
    ) -> Result<Response<pb::ReportSightingsResponse>, Status> {
        check_agent_id(&req, &req.get_ref().agent_id)?;
        let r = req.into_inner();
        let n = r.sightings.len() as u64;
        let coord = self.coord.clone();
        blocking(move || coord.report_sightings(&r.agent_id, &r.sightings)).await?;
        if let Some(m) = &self.metrics {
            m.sightings_reported.inc_by(n);
        }
        Ok(Response::new(pb::ReportSightingsResponse {}))
    }

    pub async fn report_status(
        &self,
        req: Request<pb::AgentStatus>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        check_agent_id(&req, &req.get_ref().agent_id)?;
        let s = req.into_inner();
        let coord = self.coord.clone();
        blocking(move || coord.report(&s)).await?;
        Ok(Response::new(pb::ReportStatusResponse {}))
    }
}
