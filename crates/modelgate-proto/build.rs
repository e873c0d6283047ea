//! Compiles `proto/open_inference_grpc.proto` with protox (pure Rust, no system
//! `protoc`) and generates prost messages plus the tonic server and client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/open_inference_grpc.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
