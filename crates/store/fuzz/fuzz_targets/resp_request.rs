//! The request parser on arbitrary bytes, fed whole and in chunks: never a panic, and
//! the same requests (or the same error) however the bytes arrive.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sessionplane_store::resp::{Limits, RequestParser};

const LIMITS: Limits = Limits {
    max_bulk_len: 4096,
    max_multibulk_len: 64,
    max_inline_len: 1024,
    max_depth: 8,
    max_request_bytes: 16 * 1024,
};

type Parsed = (Vec<Vec<Vec<u8>>>, Option<String>);

fn parse(chunks: &mut dyn Iterator<Item = &[u8]>, authenticated: bool) -> Parsed {
    let mut parser = RequestParser::new(LIMITS);
    parser.set_authenticated(authenticated);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match parser.next(&mut buf) {
                Ok(Some(args)) => {
                    let bytes: usize = args.iter().map(Vec::len).sum();
                    assert!(bytes <= LIMITS.max_request_bytes);
                    out.push(args);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        // Nothing may pile up beyond one line or one bulk plus its CRLF.
        assert!(buf.len() <= LIMITS.max_bulk_len + LIMITS.max_inline_len + chunk.len() + 2);
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 16) + 1;
    let authenticated = first & 0x80 == 0;
    let whole = parse(&mut std::iter::once(rest), authenticated);
    let chunked = parse(&mut rest.chunks(chunk), authenticated);
    assert_eq!(whole, chunked);
});
