//! Inference protocols and the operations a request can ask for.

use std::fmt;

/// The inference protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// KServe V1 ("TensorFlow V1 HTTP API"): `/v1/models/{m}:predict`.
    V1,
    /// Open Inference Protocol V2 over REST: `/v2/models/{m}/infer`.
    V2,
    /// Open Inference Protocol V2 over gRPC: `inference.GRPCInferenceService`.
    Grpc,
    /// OpenAI-compatible API (vLLM, LiteLLM): `/v1/chat/completions`.
    OpenAi,
    /// modelgate's own admin API and UI under `/admin` (never a model's
    /// protocol: not accepted in `models[].protocols`).
    Admin,
}

impl Protocol {
    /// The name used in configuration, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2 => "v2",
            Protocol::Grpc => "grpc",
            Protocol::OpenAi => "openai",
            Protocol::Admin => "admin",
        }
    }

    /// Parses a configuration name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "v1" => Protocol::V1,
            "v2" => Protocol::V2,
            "grpc" => Protocol::Grpc,
            "openai" => Protocol::OpenAi,
            _ => return None,
        })
    }

    /// The error body shape clients of this protocol parse.
    pub const fn error_shape(self) -> ErrorShape {
        match self {
            Protocol::V1 | Protocol::V2 | Protocol::Admin => ErrorShape::KServe,
            Protocol::Grpc => ErrorShape::Grpc,
            Protocol::OpenAi => ErrorShape::OpenAi,
        }
    }

    pub const ALL: [Protocol; 4] = [Protocol::V1, Protocol::V2, Protocol::Grpc, Protocol::OpenAi];
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an error body is written for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// KServe V1 / OIP V2: `{"error": "<message>"}`.
    KServe,
    /// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// gRPC: HTTP 200 with `grpc-status` / `grpc-message` (trailers-only).
    Grpc,
    /// Envoy's local replies: `text/plain` bodies such as `RBAC: access denied`
    /// (Istio-compatibility mode).
    EnvoyText,
}

/// What a request asks the model server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// V2 `GET /v2/health/live`, gRPC `ServerLive`.
    ServerLive,
    /// V2 `GET /v2/health/ready`, gRPC `ServerReady`.
    ServerReady,
    /// V2 `GET /v2`, gRPC `ServerMetadata`.
    ServerMetadata,
    /// V1 `GET /v1/models`, OpenAI `GET /v1/models`, KServe `GET /v2/models`.
    ListModels,
    /// V1 `GET /v1/models/{m}`, V2 `GET /v2/models/{m}/ready`, gRPC `ModelReady`.
    ModelReady,
    /// V2 `GET /v2/models/{m}`, gRPC `ModelMetadata`, OpenAI `GET /v1/models/{m}`.
    ModelMetadata,
    /// V1 `:predict`, V2 `/infer`, gRPC `ModelInfer`.
    Infer,
    /// V1 `:explain`.
    Explain,
    /// OpenAI `POST /v1/completions`.
    Completions,
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// Any request to modelgate's admin API or UI (`/admin/...`): needs the
    /// admin role.
    Admin,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::ServerLive => "server_live",
            Operation::ServerReady => "server_ready",
            Operation::ServerMetadata => "server_metadata",
            Operation::ListModels => "list_models",
            Operation::ModelReady => "model_ready",
            Operation::ModelMetadata => "model_metadata",
            Operation::Infer => "infer",
            Operation::Explain => "explain",
            Operation::Completions => "completions",
            Operation::ChatCompletions => "chat_completions",
            Operation::Embeddings => "embeddings",
            Operation::Admin => "admin",
        }
    }

    /// Operations that concern one model (and so need a grant for it).
    pub const fn is_model_scoped(self) -> bool {
        !matches!(
            self,
            Operation::ServerLive
                | Operation::ServerReady
                | Operation::ServerMetadata
                | Operation::ListModels
                | Operation::Admin
        )
    }

    /// Health and metadata reads, which operators commonly exempt from auth.
    pub const fn is_probe(self) -> bool {
        matches!(
            self,
            Operation::ServerLive | Operation::ServerReady | Operation::ModelReady
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
