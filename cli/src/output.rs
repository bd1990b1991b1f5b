//! Printing results: aligned `label  value` lines for people, one JSON object with `--json`.

use serde_json::{Map, Value};

/// A result being assembled: a title line and labelled values.
#[derive(Debug, Default)]
pub struct Summary {
    title: String,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
    notes: Vec<String>,
}

impl Summary {
    /// A summary headed by `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Summary {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Adds a labelled value (`key` is its JSON name).
    pub fn row(&mut self, key: &str, label: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        self.json
            .insert(key.to_string(), Value::String(value.clone()));
        self.rows.push((label.to_string(), value));
        self
    }

    /// Adds a JSON-only value.
    pub fn data(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.json.insert(key.to_string(), value.into());
        self
    }

    /// Adds a line printed after the rows (text mode only).
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// The JSON values (without `ok`), e.g. to go into a failure object.
    pub fn json_values(&self) -> Map<String, Value> {
        let mut obj = self.json.clone();
        obj.insert("result".into(), Value::String(self.title.clone()));
        obj
    }

    /// Prints to stdout.
    pub fn print(&self, json: bool) {
        if json {
            let mut obj = self.json.clone();
            obj.insert("result".into(), Value::String(self.title.clone()));
            // Failures print {"ok":false,"error":{…}} (report::Report::to_json).
            obj.insert("ok".into(), Value::Bool(true));
            println!("{}", Value::Object(obj));
            return;
        }
        println!("{}", self.title);
        let width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        for (label, value) in &self.rows {
            println!("  {label:<width$}  {value}");
        }
        for n in &self.notes {
            println!("{n}");
        }
    }
}

/// `in 29 days`, `in 3 hours`, `2 days ago` for a time relative to `now`.
pub fn relative(when: u64, now: u64) -> String {
    let (d, future) = if when >= now {
        (when - now, true)
    } else {
        (now - when, false)
    };
    // Rounded to the nearest unit, so "30d" from now reads "in 30 days".
    let text = if d >= 2 * 86_400 - 1800 {
        format!("{} days", (d + 43_200) / 86_400)
    } else if d >= 2 * 3600 - 60 {
        format!("{} hours", (d + 1800) / 3600)
    } else if d >= 120 {
        format!("{} minutes", (d + 30) / 60)
    } else {
        format!("{d} seconds")
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(100 + 30 * 86_400, 100), "in 30 days");
        assert_eq!(relative(100, 100 + 7200), "2 hours ago");
        assert_eq!(relative(10, 5), "in 5 seconds");
        assert_eq!(relative(30 * 86_400 - 40, 0), "in 30 days");
    }
}
