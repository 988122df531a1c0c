"""PDF: every page rendered through one kaleido browser (Chromium), merged with pypdf."""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyschedvisu import __version__
from pyschedvisu.render.pages import (
    Page,
)
from pyschedvisu_core import figures
from pyschedvisu_core.errors import ReportError

#: Debian's Chromium; any Chrome/Chromium on PATH is used when it is missing.
CHROMIUM = Path("/usr/bin/chromium")
#: Kaleido tabs rendering in parallel (one per core of the reference 2-core machine).
KALEIDO_TABS = 2
#: Longest time one page may take to render (s).
PAGE_TIMEOUT_S = 120.0


def chromium_path() -> str:
    """The Chromium kaleido drives: Debian's, else one on PATH."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ReportError(
        "no Chromium found: install the Debian package 'chromium' (kaleido 1 needs it)"
    )


def _run(coro: Any) -> Any:
    """Run a coroutine to completion, also from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="kaleido")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _kaleido_class() -> Any:
    """Kaleido whose tabs are not reloaded between pages.

    Kaleido reloads a tab (and re-parses the 4.8 MB plotly.js) after every figure: about
    0.5 s of CPU per page, a third of a 35-page run. Our figures are all of one kind (same
    background, same page size) and the tab's renderer replaces its output on every call,
    so the reload buys nothing here. Falls back to plain Kaleido if its internals change.
    """
    import kaleido

    if not all(
        hasattr(kaleido.Kaleido, name) for name in ("_return_kaleido_tab", "_get_kaleido_tab")
    ):
        return kaleido.Kaleido

    class _ReusingKaleido(kaleido.Kaleido):  # type: ignore[misc]
        async def _get_kaleido_tab(self) -> Any:
            tab = await super()._get_kaleido_tab()
            checked: set[str] = self.__dict__.setdefault("_scopes_checked", set())
            if tab.tab.target_id not in checked:
                await _ensure_scopes(tab)
                checked.add(tab.tab.target_id)
            return tab

        async def _return_kaleido_tab(self, tab: Any) -> None:
            await self.tabs_ready.put(tab)

    return _ReusingKaleido


async def _ensure_scopes(tab: Any, attempts: int = 3) -> None:
    """Reload ``tab`` until its page's script context holds kaleido's renderer.

    Kaleido sends Runtime.enable after Page.navigate and keeps the first context Chromium
    reports: now and then that is the blank page's, not the one that loads kaleido's script,
    and every figure of the tab fails with "kaleido_scopes is not defined" (about one run in
    three with a single tab). Kaleido's own reload after each figure would mend the tab from
    its second figure on; we do not reload (see :func:`_kaleido_class`), so we check once.
    """
    for _ in range(attempts):
        reply = await tab.tab.send_command(
            "Runtime.callFunctionOn",
            params={
                "functionDeclaration": "function(){return typeof kaleido_scopes === 'object';}",
                "executionContextId": tab._current_js_id,
                "returnByValue": True,
            },
        )
        if (reply or {}).get("result", {}).get("result", {}).get("value") is True:
            return
        await tab.reload()  # Runtime is enabled now: the next context created is the page's


async def _render_all(
    prepare: Callable[[], Sequence[dict[str, Any]]],
    count: int,
    tabs: int,
    timeout: float,
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[bytes], Any]:
    """PDF pages of the figures ``prepare()`` returns, and the result of ``meanwhile()``.

    Chromium takes seconds to start and load plotly.js in each tab, and waits on it; the
    figures are prepared (a thread) while it starts, and ``meanwhile`` (the HTML) runs in a
    thread while the pages render.
    """
    opts = {"format": "pdf", "width": figures.PAGE_WIDTH, "height": figures.PAGE_HEIGHT}
    prepared = asyncio.ensure_future(asyncio.to_thread(prepare))
    try:
        async with _kaleido_class()(
            n=max(1, min(tabs, count)), path=chromium_path(), mathjax=False, timeout=timeout
        ) as k:
            figs = await prepared
            side = asyncio.ensure_future(asyncio.to_thread(meanwhile or (lambda: None)))
            try:
                # One browser for the whole run; the tab queue spreads the pages over the tabs.
                pdfs = list(await asyncio.gather(*(k.calc_fig(f, opts=opts) for f in figs)))
            finally:
                side_result = await side
            return pdfs, side_result
    finally:
        if not prepared.done():
            prepared.cancel()


def _render(
    prepare: Callable[[], Sequence[dict[str, Any]]],
    count: int,
    tabs: int,
    timeout: float,
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[bytes], Any]:
    try:
        return _run(_render_all(prepare, count, tabs, timeout, meanwhile))  # type: ignore[no-any-return]
    except ReportError:
        raise
    except Exception as exc:  # kaleido / choreographer / Chromium errors of every kind
        raise ReportError(
            f"PDF rendering with kaleido failed: {type(exc).__name__}: {exc}"
        ) from exc


def render_pdf_pages(
    figs: Sequence[dict[str, Any]], *, tabs: int = KALEIDO_TABS, timeout: float = PAGE_TIMEOUT_S
) -> list[bytes]:
    """One single-page PDF per figure dict, all through one kaleido browser."""
    if not figs:
        return []
    return _render(lambda: figs, len(figs), tabs, timeout)[0]


def merge_pdf(
    page_pdfs: Sequence[bytes],
    pages: Sequence[Page],
    *,
    title: str,
    subject: str,
    keywords: str,
    front: Sequence[str] = (),
    aliases: Sequence[tuple[Page, Page]] = (),
    uptake_title: str = "Injection → scan",
) -> bytes:
    """Merge single-page PDFs; outline ``title`` -> [front pages] -> machine -> period
    [-> ``uptake_title``]; metadata; compression.

    ``front``: titles of the leading pages (summary, trends), before those of ``pages``.
    ``aliases``: (page not repeated, the identical page shown instead): its period's outline
    entry points at the page shown. A page with an ``uptake_figure`` is followed by that
    page (DOMAIN §8), outlined under its period.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError

    writer = PdfWriter()
    try:
        for data in page_pdfs:
            reader = PdfReader(io.BytesIO(data))
            for pdf_page in reader.pages:
                writer.add_page(pdf_page)
    except PyPdfError as exc:
        raise ReportError(f"a rendered page is not a valid PDF ({exc})") from exc
    root = writer.add_outline_item(title=title, page_number=0)
    for index, name in enumerate(front):
        writer.add_outline_item(title=name, page_number=index, parent=root)
    index_of: dict[int, int] = {}
    at = len(front)
    for page in pages:
        index_of[id(page)] = at
        at += 2 if page.uptake_figure else 1
    alias_of: dict[int, list[Page]] = {}
    for alias, shown in aliases:
        alias_of.setdefault(id(shown), []).append(alias)
    machine_items: dict[str, Any] = {}
    for page in pages:
        index = index_of[id(page)]
        if page.machine not in machine_items:
            machine_items[page.machine] = writer.add_outline_item(
                title=page.machine, page_number=index, parent=root
            )
        parent = machine_items[page.machine]
        item = writer.add_outline_item(title=page.period_label, page_number=index, parent=parent)
        if page.uptake_figure:
            writer.add_outline_item(title=uptake_title, page_number=index + 1, parent=item)
        for alias in alias_of.get(id(page), []):
            writer.add_outline_item(
                title=f"{alias.period_label} (= {page.period_label})",
                page_number=index,
                parent=parent,
            )
    writer.add_metadata(
        {
            "/Title": title,
            "/Subject": subject,
            "/Keywords": keywords,
            "/Author": "pySchedVisu",
            "/Creator": f"pySchedVisu {__version__} (plotly, kaleido, pypdf)",
        }
    )
    writer.page_mode = "/UseOutlines"
    # Fonts and graphic states repeat on every page: share identical objects.
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
