//! Pinned DKIM records from a file (`[dns] pinned_file`): a DNS zone file of TXT records,
//! or a JSON object of name → TXT. Errors name the file and the line.

use std::path::Path;

use crate::authenticate::PinnedRecords;

/// A pinned record read from a file: its line, name and TXT text.
type PinnedLine = (usize, String, String);

/// Pins the TXT records of a file: JSON (`.json`: `{"name": "TXT"}`, a value may be a
/// list of strings to join) or a zone file. Errors name the file and the line.
pub fn pin_file(path: &Path, pinned: &mut PinnedRecords) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let records: Vec<PinnedLine> = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        parse_json_records(&text).map_err(|(line, e)| format!("{shown} line {line}: {e}"))?
    } else {
        parse_zone_txt(&text).map_err(|(line, e)| format!("{shown} line {line}: {e}"))?
    };
    if records.is_empty() {
        return Err(format!("{shown} has no TXT records"));
    }
    for (line, name, txt) in records {
        pinned
            .pin(&name, &txt)
            .map_err(|e| format!("{shown} line {line}: {e}"))?;
    }
    Ok(())
}

/// `{"name": "TXT" | ["part", "part"]}` with the line of each name.
fn parse_json_records(text: &str) -> Result<Vec<PinnedLine>, (usize, String)> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| (e.line(), e.to_string()))?;
    let line_of = |name: &str| {
        let quoted = serde_json::to_string(name).unwrap_or_default();
        text.find(&quoted)
            .map(|at| text[..at].lines().count().max(1))
            .unwrap_or(1)
    };
    let mut out = Vec::new();
    for (name, v) in map {
        let line = line_of(&name);
        let txt = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(parts) => parts
                .iter()
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or((line, format!("{name:?}: a list must hold only strings")))?
                .concat(),
            _ => {
                return Err((
                    line,
                    format!("{name:?}: the TXT record must be a string or a list of strings"),
                ))
            }
        };
        out.push((line, name, txt));
    }
    Ok(out)
}

/// The TXT records of a DNS zone file (RFC 1035 §5): `$ORIGIN`, `$TTL`, `;` comments,
/// `( … )` across lines, `@` and names relative to the origin, a blank owner for the
/// previous one, and quoted strings (joined). Records of other types are skipped.
fn parse_zone_txt(text: &str) -> Result<Vec<PinnedLine>, (usize, String)> {
    #[derive(Debug)]
    enum Tok {
        Word(String),
        Quoted(String),
    }
    // Tokenize one logical record (which may span lines inside parentheses).
    let mut out = Vec::new();
    let mut origin: Option<String> = None;
    let mut last_owner: Option<String> = None;
    let mut lines = text.lines().enumerate().peekable();
    while let Some((idx, first)) = lines.next() {
        let start_line = idx + 1;
        let mut toks: Vec<Tok> = Vec::new();
        let mut depth = 0usize;
        let blank_owner = first.starts_with([' ', '\t']);
        let mut line = first.to_string();
        let mut line_no = start_line;
        loop {
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    ';' => break,
                    '(' => depth += 1,
                    ')' => {
                        depth = depth
                            .checked_sub(1)
                            .ok_or((line_no, "a ')' without its '('".to_string()))?
                    }
                    '"' => {
                        let mut s = String::new();
                        let mut closed = false;
                        while let Some(c) = chars.next() {
                            match c {
                                '"' => {
                                    closed = true;
                                    break;
                                }
                                '\\' => {
                                    let digits: String = std::iter::from_fn(|| {
                                        chars.next_if(|d| d.is_ascii_digit())
                                    })
                                    .take(3)
                                    .collect();
                                    if digits.is_empty() {
                                        match chars.next() {
                                            Some(e) => s.push(e),
                                            None => break,
                                        }
                                    } else {
                                        let code: u32 = digits.parse().unwrap_or(256);
                                        let ch = u8::try_from(code).map_err(|_| {
                                            (line_no, format!("bad escape \\{digits}"))
                                        })?;
                                        s.push(char::from(ch));
                                    }
                                }
                                other => s.push(other),
                            }
                        }
                        if !closed {
                            return Err((
                                line_no,
                                "a quoted string is not closed on its line".into(),
                            ));
                        }
                        toks.push(Tok::Quoted(s));
                    }
                    c if c.is_whitespace() => {}
                    c => {
                        let mut w = String::from(c);
                        while let Some(n) = chars
                            .next_if(|n| !n.is_whitespace() && !matches!(n, ';' | '(' | ')' | '"'))
                        {
                            w.push(n);
                        }
                        toks.push(Tok::Word(w));
                    }
                }
            }
            if depth == 0 {
                break;
            }
            match lines.next() {
                Some((i, next)) => {
                    line = next.to_string();
                    line_no = i + 1;
                }
                None => return Err((start_line, "a '(' is never closed".into())),
            }
        }
        if toks.is_empty() {
            continue;
        }
        let err = |m: String| (start_line, m);
        let word = |t: &Tok| match t {
            Tok::Word(w) => Some(w.clone()),
            Tok::Quoted(_) => None,
        };
        let first_word = word(&toks[0]);
        match first_word.as_deref() {
            Some(d) if d.eq_ignore_ascii_case("$ORIGIN") => {
                let o = toks
                    .get(1)
                    .and_then(word)
                    .ok_or_else(|| err("$ORIGIN needs a domain name".into()))?;
                origin = Some(o.trim_end_matches('.').to_string());
                continue;
            }
            Some(d) if d.eq_ignore_ascii_case("$TTL") => continue,
            Some(d) if d.starts_with('$') => {
                return Err(err(format!("the directive {d} is not supported")))
            }
            _ => {}
        }
        let mut rest = toks.iter();
        let owner_raw = if blank_owner {
            last_owner
                .clone()
                .ok_or_else(|| err("the record has no owner name".into()))?
        } else {
            rest.next()
                .and_then(word)
                .ok_or_else(|| err("the record must start with a name".into()))?
        };
        let owner = if owner_raw == "@" {
            origin
                .clone()
                .ok_or_else(|| err("@ needs a $ORIGIN before it".into()))?
        } else if owner_raw.ends_with('.') || blank_owner {
            owner_raw.trim_end_matches('.').to_string()
        } else {
            match &origin {
                Some(o) => format!("{owner_raw}.{o}"),
                None => owner_raw.clone(),
            }
        };
        last_owner = Some(format!("{owner}."));
        // [TTL] [class] TYPE, in either order of TTL and class.
        let mut rtype = None;
        for t in rest.by_ref() {
            let w = word(t).ok_or_else(|| err("a quoted string before the record type".into()))?;
            if w.bytes().all(|b| b.is_ascii_digit())
                || ["IN", "CH", "HS", "CS"]
                    .iter()
                    .any(|c| w.eq_ignore_ascii_case(c))
            {
                continue;
            }
            rtype = Some(w);
            break;
        }
        let rtype = rtype.ok_or_else(|| err(format!("the record for {owner} has no type")))?;
        if !rtype.eq_ignore_ascii_case("TXT") {
            continue;
        }
        let mut txt = String::new();
        for t in rest {
            match t {
                Tok::Quoted(s) => txt.push_str(s),
                Tok::Word(w) => txt.push_str(w),
            }
        }
        if txt.is_empty() {
            return Err(err(format!("the TXT record for {owner} is empty")));
        }
        out.push((start_line, owner, txt));
    }
    Ok(out)
}
