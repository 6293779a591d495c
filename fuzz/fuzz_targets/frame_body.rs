//! One frame body (a wire frame or a tick) decoded from any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runtime::transport::tcp::fuzzing::frame_body(data);
});
