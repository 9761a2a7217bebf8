#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferro_fuzz::nft::decode(data));
