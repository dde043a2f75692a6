//! Compiles the `.proto` files with protox (a pure-Rust protobuf compiler), so neither
//! the Nix build nor a bare machine needs `protoc`. Each file's descriptor set is
//! kept for gRPC server reflection.

fn compile(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let file = format!("proto/{name}.proto");
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([&file], ["proto"])?;
    std::fs::write(out_dir.join(format!("{name}_descriptor.bin")), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile("stress")?;
    compile("agent")
}
