//! Compiles `proto/stress.proto` with protox (a pure-Rust protobuf compiler), so
//! neither the Nix build nor a bare machine needs `protoc`. The file descriptor set is
//! kept for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/stress.proto");
    let descriptors = protox::compile(["proto/stress.proto"], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("stress_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
