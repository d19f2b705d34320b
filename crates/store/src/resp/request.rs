//! Incremental request parser: consumes complete arguments from the read buffer as they
//! arrive, so a large pipelined or slowly sent request is never rescanned.

use super::{Limits, ProtocolError, UNAUTHENTICATED_MAX_BULK, UNAUTHENTICATED_MAX_MULTIBULK};
use bytes::{Buf, BytesMut};

/// Preallocation cap: declared counts are promises, not facts.
const MAX_PREALLOC: usize = 1024;

#[derive(Debug)]
struct Multibulk {
    remaining: usize,
    args: Vec<Vec<u8>>,
    bulk_len: Option<usize>,
    bytes: usize,
}

#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    authenticated: bool,
    pending: Option<Multibulk>,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            authenticated: true,
            pending: None,
        }
    }

    /// Unauthenticated connections get Redis's small limits (10 arguments, 16 KiB each).
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// Whether part of a request has been received and not yet completed.
    pub fn in_progress(&self, buf: &BytesMut) -> bool {
        self.pending.is_some() || !buf.is_empty()
    }

    fn max_multibulk(&self) -> usize {
        if self.authenticated {
            self.limits.max_multibulk_len
        } else {
            UNAUTHENTICATED_MAX_MULTIBULK
        }
    }

    fn max_bulk(&self) -> usize {
        if self.authenticated {
            self.limits.max_bulk_len
        } else {
            UNAUTHENTICATED_MAX_BULK
        }
    }

    /// The next complete request in `buf`, consuming it; `None` when more bytes are needed.
    /// Empty requests (`*0`, blank inline lines) are skipped, as Redis does.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        loop {
            if self.pending.is_none() {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] == b'*' {
                    let Some(count) = take_line(buf, self.limits.max_inline_len, |line| {
                        parse_len(&line[1..])
                    })
                    .map_err(|_| ProtocolError::TooBigMultibulkCount)?
                    else {
                        return Ok(None);
                    };
                    let count = count.ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if count > self.max_multibulk() as i64 {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    if count <= 0 {
                        continue;
                    }
                    let count = count as usize;
                    self.pending = Some(Multibulk {
                        remaining: count,
                        args: Vec::with_capacity(count.min(MAX_PREALLOC)),
                        bulk_len: None,
                        bytes: 0,
                    });
                } else {
                    let Some(line) = take_inline(buf, self.limits.max_inline_len)? else {
                        return Ok(None);
                    };
                    let args = split_inline(&line)?;
                    if args.is_empty() {
                        continue;
                    }
                    if args.len() > self.max_multibulk() {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    return Ok(Some(args));
                }
            }
            return self.continue_multibulk(buf);
        }
    }

    fn continue_multibulk(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        let max_bulk = self.max_bulk();
        let max_inline = self.limits.max_inline_len;
        let max_request = self.limits.max_request_bytes;
        let Some(mb) = self.pending.as_mut() else {
            return Ok(None);
        };
        while mb.remaining > 0 {
            let len = match mb.bulk_len {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedDollar(char::from(first)));
                    }
                    let Some(len) = take_line(buf, max_inline, |line| parse_len(&line[1..]))
                        .map_err(|_| ProtocolError::TooBigBulkCount)?
                    else {
                        return Ok(None);
                    };
                    let len = len.ok_or(ProtocolError::InvalidBulkLength)?;
                    if len < 0 || len as u64 > max_bulk as u64 {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    let len = len as usize;
                    if mb.bytes.saturating_add(len) > max_request {
                        return Err(ProtocolError::RequestTooLarge(max_request));
                    }
                    mb.bulk_len = Some(len);
                    len
                }
            };
            if buf.len() < len + 2 {
                return Ok(None);
            }
            if &buf[len..len + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            // Copied out and skipped, not split off: splitting turns the read buffer
            // into a shared one, with a reference count to maintain per argument.
            let arg = buf[..len].to_vec();
            buf.advance(len + 2);
            mb.bytes += len;
            mb.args.push(arg);
            mb.bulk_len = None;
            mb.remaining -= 1;
        }
        Ok(self.pending.take().map(|mb| mb.args))
    }
}

/// Takes a CRLF-terminated line and reads it (without the CRLF) with `read`. `Err(())`
/// when no line end appears within `max` bytes.
#[allow(clippy::result_unit_err)]
fn take_line<T>(
    buf: &mut BytesMut,
    max: usize,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>, ()> {
    let window = &buf[..buf.len().min(max + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let value = read(&buf[..end]);
            buf.advance(end + 2);
            Ok(Some(value))
        }
        None if buf.len() >= max + 2 => Err(()),
        None => Ok(None),
    }
}

/// Takes an inline command line, terminated by LF (an optional CR before it is dropped).
fn take_inline(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, ProtocolError> {
    let window = &buf[..buf.len().min(max + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let mut line = buf.split_to(end);
            buf.advance(1);
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > max => Err(ProtocolError::TooBigInline),
        None => Ok(None),
    }
}

/// A declared length: optional '-', then digits; nothing else.
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let (neg, rest) = match digits[0] {
        b'-' => (true, &digits[1..]),
        _ => (false, digits),
    };
    if rest.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

/// Splits an inline command like Redis's sdssplitargs: spaces separate, "double quotes"
/// take C escapes (\n, \xHH, ...), 'single quotes' take \'. A closing quote must be
/// followed by a space or the end.
pub(crate) fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut cur = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else {
                        return Err(ProtocolError::UnbalancedQuotes);
                    };
                    if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                        if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                            cur.push(h * 16 + l);
                            i += 4;
                            continue;
                        }
                    }
                    if c == b'\\' && i + 1 < n {
                        cur.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                    } else if c == b'"' {
                        i += 1;
                        if i < n && !line[i].is_ascii_whitespace() {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        break;
                    } else {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else {
                        return Err(ProtocolError::UnbalancedQuotes);
                    };
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        cur.push(b'\'');
                        i += 2;
                    } else if c == b'\'' {
                        i += 1;
                        if i < n && !line[i].is_ascii_whitespace() {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        break;
                    } else {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                while i < n && !line[i].is_ascii_whitespace() {
                    cur.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(cur);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}
