//! SCAN's arguments, its cursor order, and Redis's glob patterns (MATCH, KEYS).

use super::args::{eq_ignore_case, parse_i64};
use super::errors::{err, SYNTAX};
use crate::reply::Reply;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanArgs {
    pub cursor: u64,
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    /// `string`, `hash` or `set` (lowercased); other names match nothing, as in Redis.
    pub type_name: Option<String>,
}

impl ScanArgs {
    /// Parses `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
    pub fn parse(args: &[Vec<u8>]) -> Result<ScanArgs, Reply> {
        let cursor = std::str::from_utf8(args.get(1).map_or(&[][..], |c| c.as_slice()))
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| err("ERR invalid cursor"))?;
        let mut out = ScanArgs {
            cursor,
            pattern: None,
            count: 10,
            type_name: None,
        };
        let mut i = 2;
        while i < args.len() {
            let value = args.get(i + 1).ok_or_else(|| err(SYNTAX))?;
            if eq_ignore_case(&args[i], "MATCH") {
                out.pattern = Some(value.clone()).filter(|p| p.as_slice() != b"*");
            } else if eq_ignore_case(&args[i], "COUNT") {
                let count = parse_i64(value).ok_or_else(|| err(super::errors::NOT_INTEGER))?;
                if count < 1 {
                    return Err(err(SYNTAX));
                }
                out.count = count.min(1 << 20) as usize;
            } else if eq_ignore_case(&args[i], "TYPE") {
                out.type_name = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
            } else {
                return Err(err(SYNTAX));
            }
            i += 2;
        }
        Ok(out)
    }

    /// Whether a key passes MATCH and TYPE.
    pub fn accepts(&self, key: &[u8], value: &Value) -> bool {
        if let Some(t) = &self.type_name {
            if value.type_name() != t {
                return false;
            }
        }
        self.pattern.as_ref().is_none_or(|p| glob_match(p, key))
    }
}

/// The position of a key in SCAN order: a fixed 64-bit hash, never 0 (0 ends a scan).
/// A cursor is the position of the next key to return, so a key present for the whole
/// scan is returned whatever is inserted or deleted meanwhile.
pub fn scan_position(key: &[u8]) -> u64 {
    // FNV-1a, then a finalizer so that similar keys spread over the whole range.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h.max(1)
}

/// The SCAN reply: next cursor as a bulk string, then the keys.
pub fn scan_reply(next_cursor: u64, keys: Vec<Vec<u8>>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(next_cursor.to_string().into_bytes()),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ])
}

/// Redis's glob: `*`, `?`, `[abc]`, `[^a-z]`, `\x`. Iterative with one backtrack point,
/// so hostile patterns cannot take exponential time.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`; returns whether it
/// matched and the index after the class.
fn class_match(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let ch = *pattern.get(i)?;
        if ch == b']' {
            return Some((matched != negate, i + 1));
        }
        if ch == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if pattern.get(i + 1) == Some(&b'-')
            && i + 2 < pattern.len()
            && pattern[i + 2] != b']'
        {
            let (lo, hi) = (ch.min(pattern[i + 2]), ch.max(pattern[i + 2]));
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= ch == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"sess:*", b"sess:abc"));
        assert!(!glob_match(b"sess:*", b"user:abc"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxc"));
        assert!(!glob_match(b"*a*b*c", b"xxaxxbxx"));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"a"));
    }

    #[test]
    fn hostile_glob_is_fast() {
        let text = vec![b'a'; 10_000];
        let pattern = b"*a*a*a*a*a*a*a*a*a*a*b";
        let start = std::time::Instant::now();
        assert!(!glob_match(pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn scan_args() {
        let args: Vec<Vec<u8>> = ["SCAN", "0", "MATCH", "s*", "COUNT", "100", "TYPE", "HASH"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let parsed = ScanArgs::parse(&args).unwrap();
        assert_eq!(parsed.count, 100);
        assert_eq!(parsed.type_name.as_deref(), Some("hash"));
        assert!(ScanArgs::parse(&[b"SCAN".to_vec(), b"x".to_vec()]).is_err());
        assert!(ScanArgs::parse(&[b"SCAN".to_vec(), b"0".to_vec(), b"COUNT".to_vec()]).is_err());
    }
}
