//! The words of wallet replies: a first sentence saying what happened, then details;
//! the same in plain text and HTML.

/// Said when a mailbox has no wallet.
pub(crate) const NO_WALLET: &str = "You have no mailbox wallet at this broker yet. When someone sends you money through Spring Mail, reply \"claim\" to the notification and it lands in a new wallet.";

/// Said in the mail that opens a wallet: the way out without the broker.
pub(crate) const OPENED: &str = "This is a new mailbox wallet: the escrow contract holds its coins under an account id that does not show your address. This broker moves them only on your DKIM-signed mail, within limits the contract enforces. You can bind a key of your own to the wallet (reply with the line `springmail account bind --mailbox` makes: \"bind\", your address and its signature); from then on you can withdraw with that key without this broker (`springmail account withdraw`), even if it disappears.";

/// What a wallet owner can write.
pub(crate) const HOW_TO: &str = "Write to this address: \"balance\" for your balance and movements, \"pay 0.5 QTUM to someone@example.com\" to pay a mailbox, \"pay 1 QTUM to q…\" to pay a Qtum address.";

/// The note in a notification of a payment from a wallet.
pub(crate) const NOTIFICATION_NOTE: &str = "Reply to this mail with the word claim (or with nothing at all) to take it into a mailbox wallet at this broker.";

/// A reply's content.
#[derive(Debug, Clone, Default)]
pub(crate) struct Body {
    paragraphs: Vec<String>,
    items: Vec<String>,
}

impl Body {
    pub(crate) fn new(sentence: &str) -> Self {
        Body {
            paragraphs: vec![sentence.to_string()],
            items: Vec::new(),
        }
    }

    pub(crate) fn then(mut self, paragraph: &str) -> Self {
        self.paragraphs.push(paragraph.to_string());
        self
    }

    pub(crate) fn item(mut self, line: &str) -> Self {
        self.items.push(line.to_string());
        self
    }

    pub(crate) fn text(&self) -> String {
        let mut out = String::from("Hello,\n\n");
        for p in &self.paragraphs {
            out.push_str(p);
            out.push_str("\n\n");
        }
        for i in &self.items {
            out.push_str("  ");
            out.push_str(i);
            out.push('\n');
        }
        if !self.items.is_empty() {
            out.push('\n');
        }
        out.push_str("Spring Mail\n");
        out
    }

    pub(crate) fn html(&self) -> String {
        let mut out = String::from("<!DOCTYPE html><html><body><p>Hello,</p>");
        for p in &self.paragraphs {
            out.push_str(&format!("<p>{}</p>", escape(p)));
        }
        if !self.items.is_empty() {
            out.push_str("<ul>");
            for i in &self.items {
                out.push_str(&format!("<li><code>{}</code></li>", escape(i)));
            }
            out.push_str("</ul>");
        }
        out.push_str("<p>Spring Mail</p></body></html>");
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
