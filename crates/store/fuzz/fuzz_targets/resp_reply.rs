//! The reply parser on arbitrary bytes: never a panic, never more consumed than given,
//! and a parsed reply encodes back to something that parses to the same reply.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sessionplane_store::reply::Reply;
use sessionplane_store::resp::{encode, parse_reply, Limits, Protocol};

fn has_nan(r: &Reply) -> bool {
    match r {
        Reply::Double(d) => d.is_nan(),
        Reply::Array(v) | Reply::Set(v) => v.iter().any(has_nan),
        Reply::Map(v) => v.iter().any(|(k, x)| has_nan(k) || has_nan(x)),
        _ => false,
    }
}

/// RESP3 has one null: a RESP2 null array (`*-1`) encodes as `_` and comes back as Nil.
fn resp3_view(r: &Reply) -> Reply {
    match r {
        Reply::NilArray => Reply::Nil,
        Reply::Array(v) => Reply::Array(v.iter().map(resp3_view).collect()),
        Reply::Set(v) => Reply::Set(v.iter().map(resp3_view).collect()),
        Reply::Map(v) => Reply::Map(v.iter().map(|(k, x)| (resp3_view(k), resp3_view(x))).collect()),
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk_len: 4096,
        max_multibulk_len: 64,
        max_inline_len: 1024,
        max_depth: 8,
        max_request_bytes: 16 * 1024,
    };
    if let Ok(Some((reply, used))) = parse_reply(data, &limits) {
        assert!(used <= data.len());
        if has_nan(&reply) {
            return;
        }
        let mut out = BytesMut::new();
        encode(&reply, Protocol::Resp3, &mut out);
        // Simple strings and errors lose CR/LF on encoding; compare only clean ones.
        if let Ok(Some((again, n))) = parse_reply(&out, &limits) {
            assert_eq!(n, out.len());
            let clean = !format!("{reply:?}").contains("\\r") && !format!("{reply:?}").contains("\\n");
            if clean {
                assert_eq!(resp3_view(&again), resp3_view(&reply));
            }
        }
    }
});
