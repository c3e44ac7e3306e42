//! Session code parsing: never panics, and whatever parses prints back to an equal code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::SessionCode;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(code) = s.parse::<SessionCode>()
    {
        assert_eq!(code.to_string().parse::<SessionCode>(), Ok(code));
    }
});
