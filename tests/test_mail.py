"""E-mail delivery against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu import mail
from pyschedvisu.config import EmailSettings
from pyschedvisu_core.errors import DeliveryError
from tests.conftest import free_port
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpSink

END = dt.date(2026, 11, 20)
PDF_BYTES = b"%PDF-1.7\n% fake but byte-exact\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "reports" / "2026"
    folder.mkdir(parents=True)
    pdf = folder / "pyschedvisu_report_2026-11-20_20261121T010000.pdf"
    pdf.write_bytes(PDF_BYTES)
    html = pdf.with_suffix(".html")
    html.write_text("<html></html>")
    return pdf, html


def settings_for(sink: SmtpSink, **kw: object) -> EmailSettings:
    base: dict[str, object] = {
        "enabled": True,
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "recipients": "chef@hospital.test, planning@hospital.test",
        "sender_name": "pySchedVisu",
        "sender_address": "pyschedvisu@hospital.test",
    }
    base.update(kw)
    return EmailSettings.model_validate(base)


def test_report_is_delivered_with_subject_recipients_and_pdf(
    smtp_server: SmtpSink, report: tuple[Path, Path]
) -> None:
    pdf, html = report
    cfg = settings_for(smtp_server)
    delivery = mail.send_report(cfg, pdf, html, END, notes=["Jours manquants : 2026-11-18"])
    assert delivery.sent and not delivery.dry_run
    (got,) = smtp_server.wait_for(1)
    assert sorted(got.rcpt_tos) == ["chef@hospital.test", "planning@hospital.test"]
    assert got.mail_from == "pyschedvisu@hospital.test"
    msg = got.message
    assert msg["Subject"] == "Rapport pySchedVisu du 20/11/2026"
    assert "pySchedVisu <pyschedvisu@hospital.test>" in msg["From"]
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == [pdf.name]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == PDF_BYTES
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    text = body.get_content()
    assert f"file:///{pdf.resolve().as_posix()}" in text
    assert str(html.resolve()) in text
    assert f"dossier {pdf.parent.resolve().as_posix()}" in text
    assert "2026-11-18" in text
    assert "{report" not in text


def test_dry_run_sends_nothing(smtp_server: SmtpSink, report: tuple[Path, Path]) -> None:
    pdf, html = report
    delivery = mail.send_report(settings_for(smtp_server, dry_run=True), pdf, html, END)
    assert delivery.dry_run and not delivery.sent
    assert delivery.subject == "Rapport pySchedVisu du 20/11/2026"
    assert smtp_server.messages == []


def test_pdf_not_attached_when_switched_off(
    smtp_server: SmtpSink, report: tuple[Path, Path]
) -> None:
    pdf, html = report
    mail.send_report(settings_for(smtp_server, attach_pdf=False), pdf, html, END)
    (got,) = smtp_server.wait_for(1)
    assert list(got.message.iter_attachments()) == []


def test_login_with_credentials_from_env(
    smtp_auth_server: SmtpSink, report: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("PYSCHEDVISU_SMTP_PASSWORD", SMTP_PASSWORD)
    mail.send_report(settings_for(smtp_auth_server), *report, END)
    smtp_auth_server.wait_for(1)
    assert smtp_auth_server.logins == [SMTP_USER]


def test_password_from_secret_block_when_env_unset(
    smtp_auth_server: SmtpSink, report: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SMTP_USERNAME", SMTP_USER)
    asked: list[str] = []

    def loader(name: str) -> str:
        asked.append(name)
        return SMTP_PASSWORD

    cfg = settings_for(smtp_auth_server, password_secret_block="smtp-password")
    mail.send_report(cfg, *report, END, secret_loader=loader)
    smtp_auth_server.wait_for(1)
    assert asked == ["smtp-password"]


def test_wrong_password_is_a_delivery_error(
    smtp_auth_server: SmtpSink, report: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("PYSCHEDVISU_SMTP_PASSWORD", "wrong")
    with pytest.raises(DeliveryError, match="login refused"):
        mail.send_report(settings_for(smtp_auth_server), *report, END)
    assert smtp_auth_server.messages == []


def test_user_without_password_is_a_delivery_error(
    report: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SMTP_USERNAME", SMTP_USER)
    cfg = EmailSettings(enabled=True, recipients=["a@b.test"], smtp_port=free_port())
    with pytest.raises(DeliveryError, match="no password"):
        mail.send_report(cfg, *report, END)


def test_unreachable_server_is_a_delivery_error(report: tuple[Path, Path]) -> None:
    cfg = EmailSettings(
        enabled=True, recipients=["a@b.test"], smtp_host="127.0.0.1", smtp_port=free_port()
    )
    with pytest.raises(DeliveryError, match="cannot send") as info:
        mail.send_report(cfg, *report, END)
    assert isinstance(info.value.__cause__, OSError)


def test_no_recipients_is_a_delivery_error(report: tuple[Path, Path]) -> None:
    with pytest.raises(DeliveryError, match="recipients"):
        mail.build_message(EmailSettings(enabled=True), report[0], report[1], END)


def test_missing_pdf_is_a_delivery_error(tmp_path: Path) -> None:
    cfg = EmailSettings(enabled=True, recipients=["a@b.test"])
    with pytest.raises(DeliveryError, match="cannot attach"):
        mail.build_message(cfg, tmp_path / "nope.pdf", None, END)


def test_fill_keeps_css_braces_and_unknown_names() -> None:
    template = "<style>p {color: red}</style>{report_name} {unknown} {end_date}"
    assert mail.fill(template, {"report_name": "r.pdf", "end_date": "20/11/2026"}) == (
        "<style>p {color: red}</style>r.pdf {unknown} 20/11/2026"
    )


def test_placeholder_values_are_html_escaped_in_body(tmp_path: Path) -> None:
    pdf = tmp_path / "a&b<c>.pdf"
    pdf.write_bytes(PDF_BYTES)
    cfg = EmailSettings(enabled=True, recipients=["a@b.test"], body_html="<p>{report_name}</p>")
    msg = mail.build_message(cfg, pdf, None, END)
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    assert "<p>a&amp;b&lt;c&gt;.pdf</p>" in body.get_content()


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=200))
def test_fill_without_placeholders_is_identity(text: str) -> None:
    assert mail.fill(text, {"report_name": "x"}) == text


@given(
    st.lists(st.sampled_from(mail.PLACEHOLDERS), max_size=8),
    st.text(alphabet="abc/ .", max_size=10),
)
def test_fill_replaces_every_known_placeholder(names: list[str], value: str) -> None:
    template = "|".join("{" + n + "}" for n in names)
    assert mail.fill(template, dict.fromkeys(mail.PLACEHOLDERS, value)) == "|".join(
        value for _ in names
    )
