//! Envoy's `jwt_authn` status strings (google/jwt_verify_lib `status.cc`),
//! verbatim: clients and runbooks grep for them. (The credential-missing and
//! audience strings are rendered by `modelgate_core::reject`.)

pub const EXPIRED: &str = "Jwt is expired";
pub const NOT_YET_VALID: &str = "Jwt not yet valid";
pub const BAD_FORMAT: &str =
    "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
pub const HEADER_BAD_BASE64: &str = "Jwt header is an invalid Base64url encoded";
pub const HEADER_BAD_JSON: &str = "Jwt header is an invalid JSON";
pub const HEADER_BAD_ALG: &str = "Jwt header [alg] field is required and must be a string";
pub const HEADER_ALG_NOT_SUPPORTED: &str = "Jwt header [alg] is not supported";
/// RFC 7515 §4.1.11: `crit` names an extension modelgate does not
/// understand (it understands none), or is not a non-empty list of
/// extension names. Not one of jwt_verify_lib's strings (it ignores `crit`).
pub const HEADER_BAD_CRIT: &str = "Jwt header [crit] names an extension that is not understood";
pub const HEADER_BAD_KID: &str = "Jwt header [kid] field is not a string";
pub const PAYLOAD_BAD_BASE64: &str = "Jwt payload is an invalid Base64url encoded";
pub const PAYLOAD_BAD_JSON: &str = "Jwt payload is an invalid JSON";
pub const ISS_NOT_STRING: &str = "Jwt payload [iss] field is not a string";
pub const SUB_NOT_STRING: &str = "Jwt payload [sub] field is not a string";
pub const JTI_NOT_STRING: &str = "Jwt payload [jti] field is not a string";
pub const AUD_NOT_STRING: &str = "Jwt payload [aud] field is not a string or string list";
pub const SIGNATURE_BAD_BASE64: &str = "Jwt signature is an invalid Base64url encoded";
pub const UNKNOWN_ISSUER: &str = "Jwt issuer is not configured";
pub const VERIFICATION_FAILS: &str = "Jwt verification fails";
pub const MULTIPLE_TOKENS: &str = "Found multiple Jwt tokens";
pub const JWKS_BAD_JSON: &str = "Jwks is an invalid JSON";
pub const JWKS_NO_KEYS: &str = "Jwks does not have [keys] field";
pub const JWKS_BAD_KEYS: &str = "[keys] in Jwks is not an array";
pub const JWKS_NO_VALID_KEYS: &str = "Jwks doesn't have any valid public key";
pub const JWKS_KID_ALG_MISMATCH: &str = "Jwks doesn't have key to match kid or alg from Jwt";
pub const JWKS_FETCH_FAILED: &str = "Jwks remote fetch is failed";

/// `Jwt payload [<claim>] field is not an integer` and its range sibling.
pub fn not_integer(claim: &str) -> &'static str {
    match claim {
        "exp" => "Jwt payload [exp] field is not an integer",
        "nbf" => "Jwt payload [nbf] field is not an integer",
        _ => "Jwt payload [iat] field is not an integer",
    }
}

pub fn out_of_range(claim: &str) -> &'static str {
    match claim {
        "exp" => "Jwt payload [exp] field is not a positive 64 bit integer",
        "nbf" => "Jwt payload [nbf] field is not a positive 64 bit integer",
        _ => "Jwt payload [iat] field is not a positive 64 bit integer",
    }
}
