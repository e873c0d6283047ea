//! Open Inference Protocol (KServe V2) gRPC types: the `inference` package's
//! messages and the `GRPCInferenceService` server and client, generated at
//! build time from `proto/open_inference_grpc.proto`.

/// The generated `inference` package.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod inference {
    tonic::include_proto!("inference");
}

pub use inference::grpc_inference_service_client::GrpcInferenceServiceClient;
pub use inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};

/// Full gRPC path prefix of the service: `/inference.GRPCInferenceService/`.
pub const SERVICE_PATH_PREFIX: &str = "/inference.GRPCInferenceService/";

#[cfg(test)]
mod tests {
    use super::inference::*;
    use prost::Message;

    #[test]
    fn raw_contents_round_trip() {
        let req = ModelInferRequest {
            model_name: "iris".into(),
            inputs: vec![model_infer_request::InferInputTensor {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![1, 4],
                ..Default::default()
            }],
            raw_input_contents: vec![vec![0u8; 16]],
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        let back = ModelInferRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.raw_input_contents[0].len(), 16);
    }

    #[test]
    fn field_numbers_match_the_spec() {
        // raw_input_contents is field 7, bytes (wire type 2): tag byte 0x3a.
        let req = ModelInferRequest {
            raw_input_contents: vec![vec![1]],
            ..Default::default()
        };
        assert_eq!(req.encode_to_vec(), vec![0x3a, 0x01, 0x01]);
        // ModelInferResponse.raw_output_contents is field 6: tag byte 0x32.
        let resp = ModelInferResponse {
            raw_output_contents: vec![vec![2]],
            ..Default::default()
        };
        assert_eq!(resp.encode_to_vec(), vec![0x32, 0x01, 0x02]);
    }
}
