//! `RolloutStatus` and `RolloutResume`: thin adapters over
//! [`crate::rollout::Rollout`], run off the async workers (they read the
//! store).

use super::*;

impl Service {
    pub(super) async fn do_rollout_status(
        &self,
        _req: Request<pb::RolloutStatusRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let (coord, rollout) = (self.coord.clone(), self.rollout.clone());
        Ok(Response::new(
            blocking(move || rollout.status(&coord)).await?,
        ))
    }

    pub(super) async fn do_rollout_resume(
        &self,
        req: Request<pb::RolloutResumeRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let origin = origin(&req);
        check_reason("reason", &req.get_ref().reason)?;
        let reason = req.into_inner().reason;
        let (coord, rollout) = (self.coord.clone(), self.rollout.clone());
        Ok(Response::new(
            blocking(move || {
                rollout.resume(&coord, &origin, &reason)?;
                rollout.status(&coord)
            })
            .await?,
        ))
    }
}
