//! Reading replies (RESP2 and RESP3), for a node that relays another node's answer.
//!
//! Stateless: it parses from the start of the buffer each time and reports how much one
//! complete reply took, so incomplete input costs a rescan; relayed replies are small.

use super::{Limits, ProtocolError};
use crate::reply::Reply;

const MAX_PREALLOC: usize = 1024;

/// Parses one reply from the start of `buf`: `Ok(None)` when incomplete, else the reply
/// and the number of bytes it took.
pub fn parse_reply(buf: &[u8], limits: &Limits) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, limits, 0)? {
        Some(reply) => Ok(Some((reply, pos))),
        None => Ok(None),
    }
}

fn line<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<&'a [u8]>, ProtocolError> {
    let start = *pos;
    let end_search = buf.len().min(start + limits.max_inline_len + 2);
    match buf[start..end_search].windows(2).position(|w| w == b"\r\n") {
        Some(off) => {
            *pos = start + off + 2;
            Ok(Some(&buf[start..start + off]))
        }
        None if buf.len() - start >= limits.max_inline_len + 2 => Err(ProtocolError::TooBigInline),
        None => Ok(None),
    }
}

fn int(text: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(ProtocolError::InvalidNumber)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn blob<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    len: i64,
    limits: &Limits,
) -> Result<Option<&'a [u8]>, ProtocolError> {
    if len < 0 || len as u64 > limits.max_bulk_len as u64 {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let len = len as usize;
    if buf.len() < *pos + len + 2 {
        return Ok(None);
    }
    if &buf[*pos + len..*pos + len + 2] != b"\r\n" {
        return Err(ProtocolError::MissingCrlf);
    }
    let data = &buf[*pos..*pos + len];
    *pos += len + 2;
    Ok(Some(data))
}

fn count(n: i64, limits: &Limits) -> Result<usize, ProtocolError> {
    if n < 0 || n as u64 > limits.max_multibulk_len as u64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    Ok(n as usize)
}

macro_rules! need {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

fn parse_at(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<Reply>, ProtocolError> {
    if depth > limits.max_depth {
        return Err(ProtocolError::TooDeep(limits.max_depth));
    }
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let head = need!(line(buf, pos, limits));
    let reply = match kind {
        b'+' => Reply::Simple(text(head)),
        b'-' => Reply::Error(text(head)),
        b':' => Reply::Integer(int(head)?),
        b'(' => Reply::Simple(text(head)),
        b'_' => Reply::Nil,
        b'#' => match head {
            b"t" => Reply::Boolean(true),
            b"f" => Reply::Boolean(false),
            _ => return Err(ProtocolError::InvalidNumber),
        },
        b',' => {
            let s = text(head);
            let d = match s.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                other => other.parse().map_err(|_| ProtocolError::InvalidNumber)?,
            };
            Reply::Double(d)
        }
        b'$' => {
            let len = int(head)?;
            if len == -1 {
                Reply::Nil
            } else {
                Reply::Bulk(need!(blob(buf, pos, len, limits)).to_vec())
            }
        }
        b'!' => Reply::Error(text(need!(blob(buf, pos, int(head)?, limits)))),
        b'=' => {
            let data = need!(blob(buf, pos, int(head)?, limits));
            // The format is three ASCII characters ("txt", "mkd"); anything else would
            // not survive re-encoding (the fuzzer's resp_reply target found "-" and half
            // a UTF-8 sequence, decoded lossily into more than three bytes).
            if data.len() < 4 || data[3] != b':' || !data[..3].is_ascii() {
                return Err(ProtocolError::InvalidVerbatim);
            }
            Reply::Verbatim(text(&data[..3]), text(&data[4..]))
        }
        b'*' | b'~' | b'>' => {
            let n = int(head)?;
            if n == -1 && kind == b'*' {
                Reply::NilArray
            } else {
                let n = count(n, limits)?;
                let mut items = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    items.push(need!(parse_at(buf, pos, limits, depth + 1)));
                }
                if kind == b'~' {
                    Reply::Set(items)
                } else {
                    Reply::Array(items)
                }
            }
        }
        b'%' | b'|' => {
            let n = count(int(head)?, limits)?;
            let mut pairs = Vec::with_capacity(n.min(MAX_PREALLOC));
            for _ in 0..n {
                let k = need!(parse_at(buf, pos, limits, depth + 1));
                let v = need!(parse_at(buf, pos, limits, depth + 1));
                pairs.push((k, v));
            }
            if kind == b'|' {
                // Attributes annotate the reply that follows; relay the reply itself.
                return parse_at(buf, pos, limits, depth + 1);
            }
            Reply::Map(pairs)
        }
        other => return Err(ProtocolError::UnknownType(other)),
    };
    Ok(Some(reply))
}
