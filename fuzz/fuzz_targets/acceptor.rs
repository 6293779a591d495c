//! The acceptor's side of the handshake against a dialer that sends any bytes: it must
//! answer, and never let them through without the cookie.
#![no_main]
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let passed = runtime().block_on(runtime::transport::tcp::fuzzing::acceptor(data));
    assert!(!passed, "bytes without the cookie passed the handshake");
});
