#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelgate_fuzz::v2_reader(data));
