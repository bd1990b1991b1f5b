//! Delivering a built mail: through the configured SMTP server, or into a file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use springmail_sdk::mail::BuiltMail;

use crate::config::Settings;
use crate::report::input_error;

/// The environment variable with the SMTP password.
pub const SMTP_PASSWORD_ENV: &str = springmail_sdk::env::SMTP_PASSWORD;

/// Where a mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Through this SMTP server URL.
    Smtp(String),
    /// Into this file (`.eml`).
    File(PathBuf),
    /// Nowhere: the user passes the link on.
    None,
}

impl Delivery {
    /// `--out FILE` if given, else SMTP if configured, else nowhere.
    pub fn choose(settings: &Settings, out: Option<&Path>, no_mail: bool) -> Delivery {
        if no_mail {
            Delivery::None
        } else if let Some(p) = out {
            Delivery::File(p.to_path_buf())
        } else if let Some(url) = &settings.smtp_url {
            Delivery::Smtp(url.clone())
        } else {
            Delivery::None
        }
    }
}

/// Sends `mail` through the SMTP server at `url` (user from the URL or `[mail] smtp_user`,
/// password from `SPRINGMAIL_SMTP_PASSWORD`).
pub async fn send_smtp(settings: &Settings, url: &str, mail: &BuiltMail) -> anyhow::Result<()> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
        input_error(
            format!("[mail] smtp_url is not a valid SMTP URL: {e}"),
            "write it like smtps://user@host:465 or smtp://host:587?tls=required",
        )
    })?;
    if let Some(password) = springmail_sdk::env::var(SMTP_PASSWORD_ENV) {
        let user = settings
            .smtp_user
            .clone()
            .or_else(|| {
                url.split_once("://")
                    .and_then(|(_, rest)| rest.split_once('@'))
                    .map(|(u, _)| u.split(':').next().unwrap_or(u).to_string())
            })
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(user, password));
    }
    let transport = builder
        .timeout(Some(std::time::Duration::from_secs(30)))
        .build();
    let from = mail
        .envelope_from
        .parse()
        .with_context(|| format!("the sender address {:?}", mail.envelope_from))?;
    let to = mail
        .envelope_to
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("the recipient address {t:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let envelope = lettre::address::Envelope::new(Some(from), to).context("the mail envelope")?;
    transport
        .send_raw(&envelope, &mail.bytes)
        .await
        .with_context(|| format!("the SMTP server at {} did not take the mail", redact(url)))?;
    Ok(())
}

/// Writes a mail to a file, readable by its owner only (it may hold a claim link).
pub fn write_eml(path: &Path, mail: &BuiltMail) -> anyhow::Result<()> {
    write_private(path, &mail.bytes)
        .with_context(|| format!("cannot write the mail to {}", path.display()))
}

/// Writes a file readable by its owner only, atomically (temp file and rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// A URL with its password (if any) hidden.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((creds, host)) => {
                let user = creds.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Delivers `mail` as chosen; returns where it went, for the user.
pub async fn deliver(
    settings: &Settings,
    delivery: &Delivery,
    mail: &BuiltMail,
) -> anyhow::Result<Option<String>> {
    match delivery {
        Delivery::Smtp(url) => {
            send_smtp(settings, url, mail).await?;
            Ok(Some(format!(
                "sent to {} via {}",
                mail.envelope_to.join(", "),
                redact(url)
            )))
        }
        Delivery::File(path) => {
            write_eml(path, mail)?;
            Ok(Some(format!("written to {}", path.display())))
        }
        Delivery::None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("smtps://bob:secret@mail.example:465"),
            "smtps://bob@mail.example:465"
        );
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }
}
