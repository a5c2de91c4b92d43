#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stockstream_fuzz::smartmodule_batch(data));
