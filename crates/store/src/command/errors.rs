//! Error replies with Redis's exact texts, so clients that match on them keep working.

use crate::reply::Reply;

pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
/// What Redis Cluster answers when a multi-key command spans slots; the router uses it
/// for commands whose keys must live in one partition (RENAME).
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";

pub fn err(text: &str) -> Reply {
    Reply::Error(text.to_string())
}

/// `ERR wrong number of arguments for 'set' command`; `name` is the lowercase full name
/// (`client|setname` for subcommands), as Redis prints it.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

pub fn invalid_expire(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR invalid expire time in '{}' command",
        command.to_ascii_lowercase()
    ))
}

/// Redis's reply to an unknown command: the name and the first arguments, quoted, cut
/// at 128 bytes each as Redis does.
pub fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let name = args
        .first()
        .map(|a| lossy_prefix(a, 128))
        .unwrap_or_default();
    let mut rest = String::new();
    for arg in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push('\'');
        rest.push_str(&lossy_prefix(arg, room));
        rest.push_str("' ");
    }
    Reply::Error(sanitize(&format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    )))
}

/// `ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::Error(sanitize(&format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        lossy_prefix(sub, 128),
        command.to_ascii_uppercase()
    )))
}

fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Error lines cannot carry CR or LF; Redis replaces them with spaces.
pub fn sanitize(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_lists_args() {
        let args = vec![b"foo".to_vec(), b"a".to_vec(), b"b".to_vec()];
        assert_eq!(
            unknown_command(&args),
            Reply::Error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ".into())
        );
        assert_eq!(
            unknown_command(&[b"foo".to_vec()]),
            Reply::Error("ERR unknown command 'foo', with args beginning with: ".into())
        );
    }

    #[test]
    fn newlines_are_replaced() {
        let args = vec![b"f\r\no".to_vec()];
        let Reply::Error(text) = unknown_command(&args) else {
            panic!("not an error")
        };
        assert!(!text.contains('\n') && !text.contains('\r'));
    }
}
