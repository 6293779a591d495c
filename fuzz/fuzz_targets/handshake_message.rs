//! One handshake message decoded from any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runtime::transport::tcp::fuzzing::handshake_message(data);
});
