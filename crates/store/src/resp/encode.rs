//! Writing replies (RESP2 or RESP3) and requests.

use super::Protocol;
use crate::reply::Reply;
use bytes::{BufMut, BytesMut};

fn put_int_line(out: &mut BytesMut, prefix: u8, n: i64) {
    out.put_u8(prefix);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    put_int_line(out, b'$', bytes.len() as i64);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// A status or error line; CR and LF would end the line early, so they become spaces.
fn put_line(out: &mut BytesMut, prefix: u8, text: &str) {
    out.put_u8(prefix);
    for &b in text.as_bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{d}")
    }
}

/// Appends `reply` to `out` in the given protocol version.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match reply {
        Reply::Simple(s) => put_line(out, b'+', s),
        Reply::Error(s) => put_line(out, b'-', s),
        Reply::Integer(n) => put_int_line(out, b':', *n),
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
        Reply::Nil => out.put_slice(b"$-1\r\n"),
        Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
        Reply::NilArray => out.put_slice(b"*-1\r\n"),
        Reply::Array(items) => {
            put_int_line(out, b'*', items.len() as i64);
            for item in items {
                encode(item, proto, out);
            }
        }
        Reply::Map(pairs) => {
            if resp3 {
                put_int_line(out, b'%', pairs.len() as i64);
            } else {
                put_int_line(out, b'*', 2 * pairs.len() as i64);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Set(items) => {
            put_int_line(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
            for item in items {
                encode(item, proto, out);
            }
        }
        Reply::Double(d) if resp3 => put_line(out, b',', &format_double(*d)),
        Reply::Double(d) => put_bulk(out, format_double(*d).as_bytes()),
        Reply::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::Boolean(b) => put_int_line(out, b':', i64::from(*b)),
        Reply::Verbatim(format, text) if resp3 => {
            let mut fmt = [b' '; 3];
            for (slot, b) in fmt.iter_mut().zip(format.bytes()) {
                *slot = b;
            }
            put_int_line(out, b'=', text.len() as i64 + 4);
            out.put_slice(&fmt);
            out.put_u8(b':');
            out.put_slice(text.as_bytes());
            out.put_slice(b"\r\n");
        }
        Reply::Verbatim(_, text) => put_bulk(out, text.as_bytes()),
    }
}

/// Appends a request (a multibulk of bulk strings), as a client sends it.
pub fn encode_request(args: &[Vec<u8>], out: &mut BytesMut) {
    put_int_line(out, b'*', args.len() as i64);
    for arg in args {
        put_bulk(out, arg);
    }
}
