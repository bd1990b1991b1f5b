//! IMAP source (being written).
