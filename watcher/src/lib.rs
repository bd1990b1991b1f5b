//! Spring Mail watcher.
