//! CSV for `send --csv` input and result files, on the `csv` crate: RFC 4180 quoting,
//! CRLF or LF, a byte-order mark and `#` comment lines skipped, fields trimmed.

/// One parsed record and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line where the record starts.
    pub line: usize,
    /// The fields, unquoted and trimmed.
    pub fields: Vec<String>,
}

/// A CSV syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CSV line {line}: {reason}")]
pub struct CsvError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses CSV text. Blank lines and lines starting with `#` are skipped. No field of
/// these files holds a line break, so one that does is reported as the unclosed quote
/// it almost always is (the `csv` crate reads an unclosed quote to the end of the file).
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    // The crate places a record at the start of the comment and blank lines before it:
    // step over those, then count lines from the byte offset.
    let bytes = text.as_bytes();
    let line_at = |p: Option<&::csv::Position>| {
        let mut at = p.map_or(0, |p| p.byte() as usize).min(bytes.len());
        while at < bytes.len() && matches!(bytes[at], b'#' | b'\r' | b'\n') {
            at = match bytes[at] {
                b'#' => bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| at + n + 1),
                _ => at + 1,
            };
        }
        1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| CsvError {
            line: line_at(e.position()),
            reason: e.to_string(),
        })?;
        let line = line_at(record.position());
        if record.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err(CsvError {
                line,
                reason: "a quoted field runs over several lines (is a closing quote missing?)"
                    .into(),
            });
        }
        out.push(Record {
            line,
            fields: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// One CSV line (LF ended), each field quoted when it needs it.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .comment(Some(b'#'))
        .from_writer(Vec::new());
    writer
        .write_record(fields.iter().map(AsRef::as_ref))
        .expect("writing to memory");
    let bytes = writer.into_inner().expect("writing to memory");
    String::from_utf8(bytes).expect("UTF-8 fields stay UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_comments_and_crlf() {
        let text = "# payroll\r\nemail,amount\r\nbob@example.com,\"1,5 QTUM\"\r\n\r\n\"say \"\"hi\"\"\",2\n";
        let recs = parse(text).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].fields, vec!["email", "amount"]);
        assert_eq!(recs[0].line, 2);
        assert_eq!(recs[1].fields, vec!["bob@example.com", "1,5 QTUM"]);
        assert_eq!(recs[2].fields, vec!["say \"hi\"", "2"]);
        assert_eq!(recs[2].line, 5);
    }

    #[test]
    fn round_trips() {
        let fields = ["a,b", "c\"d", "plain", "", "#x"];
        let text = line(&fields);
        assert_eq!(parse(&text).unwrap()[0].fields, fields);
        // A leading '#' is quoted, so the line is not read back as a comment.
        assert_eq!(parse(&line(&["#1", "2"])).unwrap()[0].fields, ["#1", "2"]);
    }

    #[test]
    fn an_unclosed_quote_names_its_line() {
        let err = parse("a,b\n\"open,1\nnext,2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("closing quote"), "{err}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_field() {
        assert_eq!(
            parse("\u{feff}email,amount\n").unwrap()[0].fields,
            ["email", "amount"]
        );
    }
}
