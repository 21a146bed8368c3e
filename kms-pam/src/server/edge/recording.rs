//! Each resource's recording policy (`--unrecorded-streams`, recording caps), stored beside the
//! resource and handed to the gateway with every session's credential.

use crate::audit::recording::{RecordingPolicy, UnrecordedStreams};
use crate::kms::api::Resource;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::RecordingPolicyRecord;

/// Largest recording cap accepted (per stream).
const MAX_CAP: u64 = 1 << 40;

/// The resource's policy; the default (refuse what cannot be recorded, the gateway's caps) when
/// none was set.
pub(crate) async fn policy(
    state: &AppState,
    resource_id: &str,
) -> Result<RecordingPolicy, ApiError> {
    let Some(stored) = state.store.recording_policy(resource_id).await? else {
        return Ok(RecordingPolicy::default());
    };
    let unrecorded: UnrecordedStreams = stored.unrecorded_streams.parse().map_err(|e| {
        ApiError::internal(&format!("recording policy of resource {resource_id}: {e}"))
    })?;
    Ok(RecordingPolicy::default()
        .with_unrecorded_streams(unrecorded)
        .with_max_bytes(stored.max_bytes)
        .with_max_input_bytes(stored.max_input_bytes))
}

/// Refuses caps that make no sense (an input cap below the recording cap).
pub(crate) fn validate(policy: &RecordingPolicy) -> Result<(), ApiError> {
    for cap in [policy.max_bytes, policy.max_input_bytes]
        .into_iter()
        .flatten()
    {
        if cap > MAX_CAP {
            return Err(ApiError::invalid(format!(
                "a recording cap of {cap} bytes is more than the {MAX_CAP} allowed"
            )));
        }
    }
    if let (Some(all), Some(input)) = (policy.max_bytes, policy.max_input_bytes) {
        if input < all {
            return Err(ApiError::invalid(format!(
                "the input recording cap ({input} bytes) must be at least the recording cap \
                 ({all} bytes): input is kept past the recording cap, not cut before it"
            )));
        }
    }
    Ok(())
}

/// Stores the resource's policy.
pub(crate) async fn save(
    state: &AppState,
    resource_id: &str,
    policy: &RecordingPolicy,
) -> Result<(), ApiError> {
    let record = RecordingPolicyRecord {
        unrecorded_streams: policy.unrecorded_streams.as_str().to_owned(),
        max_bytes: policy.max_bytes,
        max_input_bytes: policy.max_input_bytes,
    };
    Ok(state
        .store
        .set_recording_policy(resource_id, &record)
        .await?)
}

/// The resource as the API shows it, with its policy.
pub(crate) async fn with_policy(
    state: &AppState,
    resource_id: &str,
    mut view: Resource,
) -> Result<Resource, ApiError> {
    view.recording = policy(state, resource_id).await?;
    Ok(view)
}
