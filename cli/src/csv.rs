//! A small RFC 4180 CSV reader and writer: enough for `send --csv` input and result
//! files (quoted fields, doubled quotes, CRLF or LF, a `#` comment line is skipped).

/// One parsed record and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line where the record starts.
    pub line: usize,
    /// The fields, unquoted.
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

/// Parses CSV text. Blank lines and lines starting with `#` are skipped.
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Skip blank and comment lines.
        match chars.peek() {
            None => break,
            Some('\n') => {
                chars.next();
                line += 1;
                continue;
            }
            Some('\r') => {
                chars.next();
                continue;
            }
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line += 1;
                continue;
            }
            _ => {}
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let c = chars.next();
            match (c, quoted) {
                (None, true) => {
                    return Err(CsvError {
                        line: start,
                        reason: "a quoted field is not closed".into(),
                    })
                }
                (None, false) => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                (Some('"'), true) => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                (Some('"'), false) if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                (Some('"'), false) => {
                    return Err(CsvError {
                        line,
                        reason: "a quote inside an unquoted field (quote the whole field)".into(),
                    })
                }
                (Some('\n'), true) => {
                    line += 1;
                    field.push('\n');
                }
                (Some(ch), true) => field.push(ch),
                (Some(','), false) => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                (Some('\r'), false) if chars.peek() == Some(&'\n') => {}
                (Some('\n'), false) => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                (Some(ch), false) if was_quoted && !ch.is_whitespace() => {
                    return Err(CsvError {
                        line,
                        reason: "text after a closing quote".into(),
                    })
                }
                (Some(ch), false) => {
                    if !was_quoted {
                        field.push(ch);
                    }
                }
            }
        }
        let fields = fields.into_iter().map(|f| f.trim().to_string()).collect();
        out.push(Record {
            line: start,
            fields,
        });
    }
    Ok(out)
}

/// Quotes a field when it needs it.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r'])
        || text.starts_with(' ')
        || text.ends_with(' ')
        || text.starts_with('#')
    {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One CSV line (LF ended).
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut s = fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
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
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a\n\"open").unwrap_err().line, 2);
        assert!(parse("ab\"c,d").is_err());
    }
}
