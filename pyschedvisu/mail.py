"""SMTP delivery of the report (DOMAIN §5): HTML body with placeholders, PDF attached.

The only module that talks SMTP. Errors from ``smtplib`` / sockets / TLS are translated
to :class:`DeliveryError`. Credentials never come from the config file: the config names
an environment variable (or a Prefect Secret block, resolved by the caller through
``secret_loader`` so this module stays free of Prefect).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from pyschedvisu.config import EmailSettings
from pyschedvisu_core.errors import DeliveryError

log = logging.getLogger(__name__)

#: Placeholders allowed in the subject and the HTML body.
PLACEHOLDERS = ("report_path", "report_dir", "report_name", "html_path", "end_date")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True)
class Delivery:
    """What was (or would have been, on dry-run) sent."""

    sent: bool
    dry_run: bool
    subject: str
    recipients: list[str]
    message_id: str
    attachment: str | None
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Plain summary (safe for logs and artifacts: no patient data in a report e-mail)."""
        return {
            "sent": self.sent,
            "dry_run": self.dry_run,
            "subject": self.subject,
            "recipients": list(self.recipients),
            "message_id": self.message_id,
            "attachment": self.attachment,
            "refused": dict(self.refused),
        }


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace the known ``{placeholder}`` names only; other braces (CSS...) stay as they are."""
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def placeholder_values(pdf_path: Path, html_path: Path | None, end: dt.date) -> dict[str, str]:
    """Values of the placeholders for one report."""
    pdf = pdf_path.resolve()
    return {
        "report_path": pdf.as_posix(),
        "report_dir": pdf.parent.as_posix(),
        "report_name": pdf.name,
        "html_path": html_path.resolve().as_posix() if html_path else "",
        "end_date": end.strftime("%d/%m/%Y"),
    }


def build_message(
    email: EmailSettings,
    pdf_path: Path,
    html_path: Path | None,
    end: dt.date,
    notes: list[str] | None = None,
) -> EmailMessage:
    """The report e-mail: HTML body (placeholders filled, notes appended), PDF attached."""
    if not email.recipients:
        raise DeliveryError("email.recipients is empty: nobody to send the report to")
    values = placeholder_values(pdf_path, html_path, end)
    escaped = {k: html.escape(v) for k, v in values.items()}
    body = fill(email.body_html, escaped)
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        body += f"<p><b>Qualité des données / data quality:</b></p><ul>{items}</ul>"
    msg = EmailMessage()
    msg["Subject"] = fill(email.subject, values)
    msg["From"] = formataddr((email.sender_name, email.sender_address))
    msg["To"] = ", ".join(email.recipients)
    msg["Date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg["Message-ID"] = make_msgid(domain=email.sender_address.rpartition("@")[2] or None)
    text = re.sub(r"<[^>]+>", " ", body)
    msg.set_content(html.unescape(re.sub(r"[ \t]+", " ", text)).strip() + "\n")
    msg.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    if email.attach_pdf:
        try:
            data = pdf_path.read_bytes()
        except OSError as exc:
            raise DeliveryError(f"cannot attach {pdf_path}: {exc}") from exc
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=pdf_path.name)
    return msg


def credentials(
    email: EmailSettings, secret_loader: Callable[[str], str] | None = None
) -> tuple[str | None, str | None]:
    """(username, password): from the env variables named in the config, else the Secret block."""
    username = os.environ.get(email.username_env) if email.username_env else None
    password = os.environ.get(email.password_env) if email.password_env else None
    if username and not password and email.password_secret_block:
        if secret_loader is None:
            raise DeliveryError(
                f"SMTP password: Secret block {email.password_secret_block!r} configured but no loader"
            )
        try:
            password = secret_loader(email.password_secret_block)
        except Exception as exc:  # the block store may fail in many ways; all mean "no password"
            raise DeliveryError(
                f"SMTP password: cannot load Secret block {email.password_secret_block!r}: {exc}"
            ) from exc
    if username and not password:
        raise DeliveryError(
            f"SMTP user set in ${email.username_env} but no password (${email.password_env} or a Secret block)"
        )
    return username or None, password or None


def send(
    email: EmailSettings,
    msg: EmailMessage,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Send ``msg`` to ``email.recipients``; returns refused recipients (address -> reason)."""
    try:
        if email.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                email.smtp_host,
                email.smtp_port,
                timeout=timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=timeout_s)
        with client:
            if email.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if username:
                client.login(username, password or "")
            refused = client.send_message(msg, to_addrs=list(email.recipients))
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"every recipient was refused by {email.smtp_host}:{email.smtp_port}"
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"SMTP login refused by {email.smtp_host}:{email.smtp_port} (code {exc.smtp_code})"
        ) from exc
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"cannot send the report via {email.smtp_host}:{email.smtp_port}: {exc}"
        ) from exc
    return {addr: f"{code} {reason!r}" for addr, (code, reason) in refused.items()}


def send_report(
    email: EmailSettings,
    pdf_path: str | Path,
    html_path: str | Path | None,
    end: dt.date,
    notes: list[str] | None = None,
    secret_loader: Callable[[str], str] | None = None,
) -> Delivery:
    """Build and send (or, on ``email.dry_run``, only build and log) the report e-mail."""
    pdf = Path(pdf_path)
    htm = Path(html_path) if html_path else None
    msg = build_message(email, pdf, htm, end, notes)
    attachment = pdf.name if email.attach_pdf else None
    if email.dry_run:
        log.info(
            "e-mail dry run: %r to %d recipient(s), %d bytes",
            msg["Subject"],
            len(email.recipients),
            len(bytes(msg)),
        )
        return Delivery(
            False,
            True,
            str(msg["Subject"]),
            list(email.recipients),
            str(msg["Message-ID"]),
            attachment,
        )
    username, password = credentials(email, secret_loader)
    refused = send(email, msg, username, password)
    log.info(
        "report e-mailed to %d recipient(s) (%d refused)",
        len(email.recipients) - len(refused),
        len(refused),
    )
    return Delivery(
        True,
        False,
        str(msg["Subject"]),
        list(email.recipients),
        str(msg["Message-ID"]),
        attachment,
        refused,
    )
