#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stockstream_fuzz::tick_json(data));
