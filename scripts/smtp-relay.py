#!/usr/bin/env python3
"""Development SMTP server for Spring Mail's dev stack (scripts/dev-stack).

Accepts mail on a loopback port for a fixed list of local users and hands each
message to dovecot over LMTP (a unix socket), so it shows up in the user's INBOX
over IMAP. Nothing is queued: the reply to DATA is sent only after dovecot has
stored the message (250) or refused it (451/550), so a test that got 250 can read
the message over IMAP right away.

- RCPT TO is checked against the users file (dovecot passwd-file format); any
  other address gets 550.
- AUTH PLAIN/LOGIN is offered without TLS (loopback only) and checked against the
  same file; it is optional, unauthenticated submission is accepted too.
- MAIL FROM is not checked: tests send "from" any domain they sign for.
- The message bytes are passed on unchanged (DKIM signatures stay valid); dovecot
  adds its own Return-Path/Delivered-To/Received headers on top.

It needs aiosmtpd (installed by scripts/dev-stack into .dev-stack/venv) and only
the standard library otherwise. Stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import smtplib
import sys
from typing import Dict, List, Optional, Tuple

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger("smtp-relay")


def load_users(path: str) -> Dict[str, str]:
    """Read `user:{PLAIN}password:...` lines (dovecot passwd-file) into {user: password}."""
    users: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            user, password = fields[0], fields[1] if len(fields) > 1 else ""
            if password.startswith("{PLAIN}"):
                password = password[len("{PLAIN}") :]
            users[user.lower()] = password
    return users


class LmtpRelay:
    """aiosmtpd handler: validate recipients, deliver over LMTP per recipient."""

    def __init__(self, users_file: str, lmtp_socket: str) -> None:
        self.users_file = users_file
        self.lmtp_socket = lmtp_socket

    def users(self) -> Dict[str, str]:
        # Re-read on every use so users added to the file work without a restart.
        return load_users(self.users_file)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: List[str],
    ) -> str:
        if address.lower() not in self.users():
            log.info("reject rcpt %s: not a local user", address)
            return "550 5.1.1 <%s>: no such user on this dev server" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):  # only with decode_data=True, which we do not set
            content = content.encode("utf-8", "surrogateescape")
        failures: List[Tuple[str, int, str]] = []
        for rcpt in envelope.rcpt_tos:
            code, text = await asyncio.to_thread(
                self._deliver_one, envelope.mail_from or "", rcpt, content, list(envelope.mail_options)
            )
            if code >= 300:
                failures.append((rcpt, code, text))
            else:
                log.info("delivered %d bytes from <%s> to <%s>", len(content), envelope.mail_from, rcpt)
        if not failures:
            return "250 2.0.0 OK: delivered to %d mailbox(es)" % len(envelope.rcpt_tos)
        for rcpt, code, text in failures:
            log.warning("delivery to <%s> failed: %d %s", rcpt, code, text)
        detail = "; ".join("<%s> %d %s" % f for f in failures)
        if len(failures) == len(envelope.rcpt_tos) and all(500 <= c < 600 for _, c, _ in failures):
            return "550 5.0.0 delivery failed: %s" % detail[:400]
        # Transient (or partial) failure: ask the client to retry the whole message.
        return "451 4.3.0 delivery failed, try again later: %s" % detail[:400]

    def _deliver_one(
        self, mail_from: str, rcpt: str, content: bytes, mail_options: List[str]
    ) -> Tuple[int, str]:
        """One LMTP transaction per recipient.

        smtplib.LMTP reads a single reply after DATA, while LMTP sends one per
        recipient; with one recipient per transaction the two agree.
        """
        try:
            with smtplib.LMTP(self.lmtp_socket, timeout=60) as lmtp:
                lmtp.ehlo("springmail-dev-relay")
                opts = [
                    o
                    for o in mail_options
                    if (o.upper().startswith("BODY=") and lmtp.has_extn("8bitmime"))
                    or (o.upper() == "SMTPUTF8" and lmtp.has_extn("smtputf8"))
                ]
                lmtp.sendmail(mail_from, [rcpt], content, mail_options=opts)
            return 250, "OK"
        except smtplib.SMTPRecipientsRefused as e:
            code, msg = e.recipients.get(rcpt, (451, b"refused"))
            return code, msg.decode("utf-8", "replace")
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error.decode("utf-8", "replace") if isinstance(
                e.smtp_error, bytes
            ) else str(e.smtp_error)
        except (OSError, smtplib.SMTPException) as e:
            # dovecot down (outage tests) or socket missing: transient.
            return 451, "LMTP unavailable: %s" % e


class Authenticator:
    def __init__(self, relay: LmtpRelay) -> None:
        self.relay = relay

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.relay.users().get(login) == password
        log.info("auth %s for %s: %s", mechanism, login, "ok" if ok else "failed")
        return AuthResult(success=ok, handled=False)


async def serve(args: argparse.Namespace) -> None:
    relay = LmtpRelay(args.users, args.lmtp)
    auth = Authenticator(relay)

    def factory() -> SMTP:
        return SMTP(
            relay,
            hostname=args.hostname,
            ident="Spring Mail dev SMTP",
            data_size_limit=args.max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            auth_required=False,
            auth_require_tls=False,  # loopback only; see module docstring
            authenticator=auth,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=args.host, port=args.port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pid_file + ".tmp", args.pid_file)
    log.info("listening on %s:%d, delivering to LMTP %s", args.host, args.port, args.lmtp)
    await stop.wait()
    log.info("shutting down")
    server.close()
    await server.wait_closed()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--lmtp", required=True, help="dovecot LMTP unix socket")
    p.add_argument("--users", required=True, help="dovecot passwd-file of local users")
    p.add_argument("--hostname", default="smtp.springmail.localhost")
    p.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    p.add_argument("--pid-file")
    args = p.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        p.error("this development server binds loopback only")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
