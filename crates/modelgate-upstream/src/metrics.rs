//! Upstream metrics: attempts per endpoint (labelled by the endpoint's index
//! in the config, never its URL) and, for OpenAI traffic, the OpenTelemetry
//! GenAI server histograms `gen_ai.server.time_to_first_token` and
//! `gen_ai.server.request.duration` (time to the last byte of the answer).
//! Every label comes from the configuration.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub model: Arc<str>,
    /// The endpoint's index in `upstream.url`/`urls` (`grpc` for `grpc_url`).
    pub upstream: Arc<str>,
    /// `ok`, `connect`, `protocol`, `timeout` or `status_5xx`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: Arc<str>,
}

fn seconds_histogram() -> Histogram {
    // 1 ms … ~9 min.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

type Hist = Family<ModelLabel, Histogram, fn() -> Histogram>;

/// The upstream metrics of the process (shared by every pipeline).
#[derive(Clone)]
pub struct UpstreamMetrics {
    pub attempts: Family<AttemptLabels, Counter>,
    pub time_to_first_token: Hist,
    pub request_duration: Hist,
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            time_to_first_token: Family::new_with_constructor(seconds_histogram),
            request_duration: Family::new_with_constructor(seconds_histogram),
        }
    }
}

/// One model's handles on the GenAI histograms.
#[derive(Clone)]
pub struct GenAiClock {
    pub ttft: Histogram,
    pub duration: Histogram,
}

impl UpstreamMetrics {
    /// The GenAI histograms of `model` (a configured name).
    pub fn gen_ai(&self, model: &Arc<str>) -> GenAiClock {
        let l = ModelLabel {
            model: model.clone(),
        };
        GenAiClock {
            ttft: self.time_to_first_token.get_or_create(&l).clone(),
            duration: self.request_duration.get_or_create(&l).clone(),
        }
    }
}
