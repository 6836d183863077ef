//! `parse_token_response` on any status, headers and body.
//!
//! Input: a raw-HTTP-like text (status line, header lines, empty line, body); see
//! `common::http_response`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, headers, body) = common::http_response(data);
    common::check_token_response(status, &headers, body);
});
