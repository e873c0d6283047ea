#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelgate_fuzz::h1_answer(data));
