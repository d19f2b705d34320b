use super::*;
use crate::reply::Reply;
use bytes::BytesMut;
use proptest::prelude::*;

fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(args) = parser.next(&mut buf)? {
        out.push(args);
    }
    Ok(out)
}

fn words(ws: &[&str]) -> Vec<Vec<u8>> {
    ws.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_and_inline() {
    let got = parse_all(
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nSET a \"b c\\n\"\r\n",
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            words(&["GET", "k"]),
            words(&["PING"]),
            words(&["SET", "a", "b c\n"])
        ]
    );
}

#[test]
fn empty_requests_are_skipped() {
    let got = parse_all(
        b"*0\r\n*-1\r\n\r\n   \n*1\r\n$4\r\nPING\r\n",
        Limits::default(),
    )
    .unwrap();
    assert_eq!(got, vec![words(&["PING"])]);
}

#[test]
fn inline_quotes() {
    assert_eq!(
        request::split_inline(b"a 'b c' \"\\x41\\t\"").unwrap(),
        words(&["a", "b c", "A\t"])
    );
    assert_eq!(
        request::split_inline(b"'it\\'s'").unwrap(),
        words(&["it's"])
    );
    assert_eq!(
        request::split_inline(b"\"abc"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(
        request::split_inline(b"\"abc\"x"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(
        request::split_inline(b"'abc"),
        Err(ProtocolError::UnbalancedQuotes)
    );
}

#[test]
fn byte_at_a_time_gives_the_same_requests() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nECHO hi\r\n";
    let mut parser = RequestParser::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in input.iter() {
        buf.extend_from_slice(&[b]);
        while let Some(args) = parser.next(&mut buf).unwrap() {
            got.push(args);
        }
    }
    assert_eq!(
        got,
        vec![words(&["SET", "key", "va\r\nl"]), words(&["ECHO", "hi"])]
    );
    assert!(!parser.in_progress(&buf));
}

#[test]
fn hostile_lengths_are_refused_before_buffering() {
    let l = Limits::default();
    assert_eq!(
        parse_all(b"*99999999999\r\n", l),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parse_all(b"*2000000\r\n", l),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parse_all(b"*1\r\n$999999999\r\n", l),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        parse_all(b"*1\r\n$-5\r\n", l),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        parse_all(b"*x\r\n", l),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parse_all(b"*1\r\n$\r\n", l),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        parse_all(b"*1\r\nfoo\r\n", l),
        Err(ProtocolError::ExpectedDollar('f'))
    );
    assert_eq!(
        parse_all(b"*1\r\n$3\r\nfooXX", l),
        Err(ProtocolError::MissingCrlf)
    );
    let long_header = [b"*".as_slice(), &vec![b'1'; 70_000]].concat();
    assert_eq!(
        parse_all(&long_header, l),
        Err(ProtocolError::TooBigMultibulkCount)
    );
    let long_inline = vec![b'a'; 70_000];
    assert_eq!(parse_all(&long_inline, l), Err(ProtocolError::TooBigInline));
    let total = Limits {
        max_request_bytes: 10,
        ..l
    };
    assert_eq!(
        parse_all(b"*3\r\n$3\r\nSET\r\n$4\r\nkkkk\r\n$4\r\nvvvv\r\n", total),
        Err(ProtocolError::RequestTooLarge(10))
    );
}

#[test]
fn unauthenticated_limits() {
    let mut parser = RequestParser::new(Limits::default());
    parser.set_authenticated(false);
    let mut buf = BytesMut::from(&b"*11\r\n"[..]);
    assert_eq!(
        parser.next(&mut buf),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    let mut parser = RequestParser::new(Limits::default());
    parser.set_authenticated(false);
    let mut buf = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$20000\r\n"[..]);
    assert_eq!(parser.next(&mut buf), Err(ProtocolError::InvalidBulkLength));
}

#[test]
fn protocol_error_text() {
    assert_eq!(
        ProtocolError::InvalidBulkLength.reply_text(),
        "ERR Protocol error: invalid bulk length"
    );
}

fn enc(reply: &Reply, proto: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(reply, proto, &mut out);
    out.to_vec()
}

#[test]
fn encodings() {
    use Protocol::*;
    assert_eq!(enc(&Reply::Nil, Resp2), b"$-1\r\n");
    assert_eq!(enc(&Reply::Nil, Resp3), b"_\r\n");
    assert_eq!(enc(&Reply::NilArray, Resp2), b"*-1\r\n");
    assert_eq!(enc(&Reply::Integer(-42), Resp2), b":-42\r\n");
    assert_eq!(
        enc(&Reply::Integer(i64::MIN), Resp2),
        b":-9223372036854775808\r\n"
    );
    assert_eq!(
        enc(&Reply::Error("ERR a\r\nb".into()), Resp2),
        b"-ERR a  b\r\n"
    );
    let map = Reply::Map(vec![(
        Reply::Bulk(b"f".to_vec()),
        Reply::Bulk(b"v".to_vec()),
    )]);
    assert_eq!(enc(&map, Resp2), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(enc(&map, Resp3), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    let set = Reply::Set(vec![Reply::Bulk(b"a".to_vec())]);
    assert_eq!(enc(&set, Resp3), b"~1\r\n$1\r\na\r\n");
    assert_eq!(enc(&Reply::Boolean(true), Resp2), b":1\r\n");
    assert_eq!(enc(&Reply::Boolean(false), Resp3), b"#f\r\n");
    assert_eq!(enc(&Reply::Double(1.5), Resp3), b",1.5\r\n");
    assert_eq!(enc(&Reply::Double(1.5), Resp2), b"$3\r\n1.5\r\n");
    assert_eq!(
        enc(&Reply::Verbatim("txt".into(), "hi".into()), Resp3),
        b"=6\r\ntxt:hi\r\n"
    );
    assert_eq!(
        enc(&Reply::Verbatim("txt".into(), "hi".into()), Resp2),
        b"$2\r\nhi\r\n"
    );
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,20}".prop_map(Reply::Simple),
        "ERR [a-z ]{0,20}".prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        proptest::collection::vec(any::<u8>(), 0..50).prop_map(Reply::Bulk),
        Just(Reply::Nil),
        any::<bool>().prop_map(Reply::Boolean),
        (-1e9f64..1e9).prop_map(Reply::Double),
        "[a-z ]{0,20}".prop_map(|t| Reply::Verbatim("txt".into(), t)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Reply::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Reply::Set),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Reply::Map),
        ]
    })
}

proptest! {
    #[test]
    fn resp3_replies_round_trip(reply in arb_reply()) {
        let bytes = enc(&reply, Protocol::Resp3);
        let (parsed, used) = parse_reply(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(parsed, reply);
        // Every strict prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse_reply(&bytes[..cut], &Limits::default()).unwrap(), None);
        }
    }

    #[test]
    fn requests_round_trip_in_any_chunking(
        reqs in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..6),
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            encode_request(r, &mut wire);
        }
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(args) = parser.next(&mut buf).unwrap() {
                got.push(args);
            }
        }
        prop_assert_eq!(got, reqs);
    }

    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_all(&input, Limits::default());
        let _ = parse_reply(&input, &Limits::default());
    }
}

#[test]
fn deep_nesting_is_refused() {
    let deep = b"*1\r\n".repeat(10_000);
    assert_eq!(
        parse_reply(&deep, &Limits::default()),
        Err(ProtocolError::TooDeep(32))
    );
    let attrs = b"|0\r\n".repeat(10_000);
    assert_eq!(
        parse_reply(&attrs, &Limits::default()),
        Err(ProtocolError::TooDeep(32))
    );
}

#[test]
fn a_verbatim_string_needs_a_three_character_ascii_format() {
    let l = Limits::default();
    assert_eq!(
        parse_reply(b"=6\r\nmkd:hi\r\n", &l).unwrap(),
        Some((Reply::Verbatim("mkd".into(), "hi".into()), 12))
    );
    // The fuzzer's find: '-' and half a UTF-8 sequence, which decoded lossily into more
    // than three bytes and came back different after re-encoding.
    for bad in [
        &b"=5\r\n-\xc3\xa9:x\r\n"[..],
        b"=4\r\n-\xef\xbf:\r\n",
        b"=4\r\ntxt \r\n",
        b"=2\r\nab\r\n",
    ] {
        assert_eq!(
            parse_reply(bad, &l),
            Err(ProtocolError::InvalidVerbatim),
            "{bad:?}"
        );
    }
}

#[test]
fn reply_resp2_forms() {
    let l = Limits::default();
    assert_eq!(parse_reply(b"$-1\r\n", &l).unwrap(), Some((Reply::Nil, 5)));
    assert_eq!(
        parse_reply(b"*-1\r\n", &l).unwrap(),
        Some((Reply::NilArray, 5))
    );
    assert_eq!(parse_reply(b"*3\r\n", &l).unwrap(), None);
    assert_eq!(
        parse_reply(b"*99999999\r\n", &l),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parse_reply(b"?\r\n", &l),
        Err(ProtocolError::UnknownType(b'?'))
    );
}
