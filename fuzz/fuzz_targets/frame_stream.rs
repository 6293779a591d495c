//! A connection's frame splitter, fed any bytes in chunks, decoding every frame.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runtime::transport::tcp::fuzzing::frame_stream(data);
});
