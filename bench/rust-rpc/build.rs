fn main() {
    tonic_build::compile_protos("../grpc/echo.proto").expect("protoc (apt install protobuf-compiler)");
}
