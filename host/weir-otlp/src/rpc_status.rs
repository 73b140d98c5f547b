//! `google.rpc.Status`, the error body of OTLP/HTTP responses.

use bytes::Bytes;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

impl RpcStatus {
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        RpcStatus {
            code: code as i32,
            message: message.into(),
        }
    }

    pub fn to_protobuf(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    pub fn to_json(&self) -> Bytes {
        let v = serde_json::json!({ "code": self.code, "message": self.message });
        Bytes::from(v.to_string())
    }
}
