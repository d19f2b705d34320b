//! Protocol violations. The texts follow Redis's (`-ERR Protocol error: ...`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("too big inline request")]
    TooBigInline,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("expected CRLF after bulk data")]
    MissingCrlf,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("request exceeds {0} bytes")]
    RequestTooLarge(usize),
    #[error("unknown reply type byte {0:#04x}")]
    UnknownType(u8),
    #[error("invalid number in reply")]
    InvalidNumber,
    #[error("aggregates nested deeper than {0}")]
    TooDeep(usize),
    #[error("verbatim string without a three-character ASCII format and ':'")]
    InvalidVerbatim,
}

impl ProtocolError {
    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ProtocolError::InvalidMultibulkLength => "invalid_multibulk_length",
            ProtocolError::InvalidBulkLength => "invalid_bulk_length",
            ProtocolError::TooBigMultibulkCount => "too_big_multibulk_count",
            ProtocolError::TooBigBulkCount => "too_big_bulk_count",
            ProtocolError::TooBigInline => "too_big_inline",
            ProtocolError::ExpectedDollar(_) => "expected_dollar",
            ProtocolError::MissingCrlf => "missing_crlf",
            ProtocolError::UnbalancedQuotes => "unbalanced_quotes",
            ProtocolError::RequestTooLarge(_) => "request_too_large",
            ProtocolError::UnknownType(_) => "unknown_type",
            ProtocolError::InvalidNumber => "invalid_number",
            ProtocolError::TooDeep(_) => "too_deep",
            ProtocolError::InvalidVerbatim => "invalid_verbatim",
        }
    }

    /// The error line a client gets before the connection is closed.
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {self}")
    }
}
