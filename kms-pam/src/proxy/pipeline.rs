//! The gateway's request pipeline as an embedder assembles it: their stages around the built-in
//! ones, the upstream client, who observes the gateway, and how exec streams are recorded.
//!
//! ```
//! use std::sync::Arc;
//! use kms_pam::metrics::GatewayMetrics;
//! use kms_pam::proxy::{NoHooks, Pipeline};
//!
//! let metrics = Arc::new(GatewayMetrics::new());
//! let pipeline = Pipeline::builder()
//!     .stage_first(NoHooks) // before the session check: sees every request
//!     .stage(NoHooks)       // after it, before the header policy and the upstream
//!     .observer(metrics)    // Prometheus; without any observer nothing is counted
//!     .build();
//! # let _ = pipeline;
//! ```
//!
//! The built-in stages keep their places: classification and the audit start come first (every
//! request is recorded, including those a stage refuses), the session check sits between
//! `stage_first` and `stage` stages, and the header policy with credential injection runs last,
//! after every stage, so no stage can smuggle `Authorization` or `Impersonate-*` upstream.

use std::fmt;
use std::sync::Arc;

use super::hooks::{ProxyHooks, Stages};
use super::upstream::{PooledConnector, UpstreamConnector};
use crate::audit::recording::RecordingConfig;
use crate::metrics::{GatewayObserver, Observers};

/// An assembled gateway pipeline; hand it to [`crate::gateway::GatewayConfig::with_pipeline`].
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) first: Stages,
    pub(crate) stages: Stages,
    pub(crate) connector: Arc<dyn UpstreamConnector>,
    pub(crate) observer: Arc<Observers>,
    pub(crate) recording: RecordingConfig,
}

impl Pipeline {
    /// Starts a pipeline with the built-in stages only.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The same pipeline with one more observer (e.g. the metrics of a `--metrics-listen`).
    pub fn with_observer(mut self, observer: Arc<dyn GatewayObserver>) -> Self {
        let mut observers = (*self.observer).clone();
        observers.push(observer);
        self.observer = Arc::new(observers);
        self
    }
}

impl Default for Pipeline {
    /// The built-in stages, the pooled HTTPS upstream, no observer, default exec recording.
    fn default() -> Self {
        PipelineBuilder::default().build()
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("first", &self.first)
            .field("stages", &self.stages)
            .field("observer", &self.observer)
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pipeline`].
#[derive(Default)]
pub struct PipelineBuilder {
    first: Stages,
    stages: Stages,
    connector: Option<Arc<dyn UpstreamConnector>>,
    observer: Observers,
    recording: RecordingConfig,
}

impl PipelineBuilder {
    /// Adds a stage that runs before the built-in session check (after stages added earlier with
    /// this method): it sees every request, including those of a session that has stopped.
    pub fn stage_first(mut self, stage: impl ProxyHooks) -> Self {
        self.first.push(Arc::new(stage));
        self
    }

    /// Adds a stage that runs after the session check and before the header policy and the
    /// upstream (after stages added earlier with this method).
    pub fn stage(mut self, stage: impl ProxyHooks) -> Self {
        self.stages.push(Arc::new(stage));
        self
    }

    /// Replaces the pooled HTTPS upstream. An `Arc` of any
    /// [`UpstreamClient`](super::UpstreamClient) is a connector sending every session there.
    pub fn upstream(mut self, connector: impl UpstreamConnector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Adds an observer of requests, streams and sessions ([`crate::metrics::GatewayMetrics`] for
    /// Prometheus). Without one, nothing is counted.
    pub fn observer(mut self, observer: Arc<dyn GatewayObserver>) -> Self {
        self.observer.push(observer);
        self
    }

    /// How exec/attach streams are recorded (default: 1 MiB per stream).
    pub fn recording(mut self, config: RecordingConfig) -> Self {
        self.recording = config;
        self
    }

    /// The pipeline.
    pub fn build(self) -> Pipeline {
        Pipeline {
            first: self.first,
            stages: self.stages,
            connector: self
                .connector
                .unwrap_or_else(|| Arc::new(PooledConnector::new())),
            observer: Arc::new(self.observer),
            recording: self.recording,
        }
    }
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("first", &self.first)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}
