"""The durable series store: one set of files per retrieved day under ``<data_dir>/series``.

Layout, for a day D in year Y::

    <data_dir>/series/Y/D.series.parquet     kept series      (schema.SERIES_SCHEMA)
    <data_dir>/series/Y/D.failed.parquet     failed series    (schema.FAILED_SCHEMA)
    <data_dir>/series/Y/D.excluded.parquet   excluded on purpose (schema.EXCLUDED_SCHEMA)
    <data_dir>/series/Y/D.manifest.json      written last: the day is complete iff it exists
    <data_dir>/series/Y.series.pack.parquet  optional: the kept series of many days of year Y

Every file is written to a temporary name in the same folder and renamed, so an
interrupted run never leaves a half-written file, and a day without a manifest is
simply retrieved again. Temporary files an interrupted run left behind are removed by the
next one (:func:`clean_stale_tmp`); a full disk is one :class:`StoreFullError` naming the file
and the space it needed. A day whose files cannot be read is moved aside
(:meth:`SeriesStore.quarantine`, to ``Y/D.corrupt-<time>/``) and retrieved again.

The day files are the truth. A yearly *pack* only makes reading many days fast (one file
instead of ~250; reading thousands of small files costs more than the whole study
extraction). Its Parquet metadata maps each packed day to the token of the write it holds
(:func:`day_token`: the manifest's ``write_id``); :meth:`SeriesStore.read_series` takes a day
from the pack only when that token is the one of the current manifest, else from the day's
file. So a day written again, removed, or a missing, stale or unreadable pack never gives
wrong rows: at worst the slow path. Stores written before packs and write ids are read as
they are (their days are identified by a digest of their manifest).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu_core import schema
from pyschedvisu_core.errors import DayUnreadableError, StoreError, StoreFullError

log = logging.getLogger("pyschedvisu.store")


def _read_umask() -> int:
    # Read once at import: os.umask is process-wide, so toggling it later would race threads.
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp creates 0600 files; stores and reports are shared, so files follow the umask instead.
FILE_MODE = 0o666 & ~_read_umask()


KINDS = {
    "series": schema.SERIES_SCHEMA,
    "failed": schema.FAILED_SCHEMA,
    "excluded": schema.EXCLUDED_SCHEMA,
}


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed): other writers of it wait."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a")
    except OSError as exc:
        if _is_disk_full(exc):
            raise _full(path, 0, exc) from exc
        raise
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


#: Temporary files of the atomic writers: ``.<name>.<random>.tmp`` next to their target.
TMP_GLOB = ".*.tmp"
#: A temporary file untouched this long belongs to no live writer (a write takes seconds).
STALE_TMP_S = 600.0


def _is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" / "quota exceeded", raised by the OS or inside polars."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text


def _full(path: Path, needed: int, exc: BaseException) -> StoreFullError:
    """The one-line error of a full disk: which file, how much it needed, how much is free."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    needed = max(needed, 4096)  # a file takes a block at least
    return StoreFullError(
        f"disk full: cannot write {path} (at least {_size(needed)} needed, {_size(free)} free "
        f"on its file system); the days already written are kept: free some space under "
        f"{path.parent} and run again",
        path=str(path),
        needed=needed,
        free=free,
    )


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + rename (no half-written file).

    Raises :class:`StoreFullError` when the disk is full (nothing written, no temp file left).
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise _full(path, len(data), exc) from exc
        raise


def atomic_write_parquet(
    path: Path,
    frame: pl.DataFrame,
    metadata: dict[str, str] | None = None,
    compression_level: int | None = None,
) -> None:
    """Write ``frame`` as Parquet (zstd) to ``path`` atomically (``metadata``: key-values).

    Raises :class:`StoreFullError` when the disk is full (nothing written, no temp file left).
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        frame.write_parquet(
            tmp,
            compression="zstd",
            compression_level=compression_level,
            statistics=True,
            metadata=metadata,
        )
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(exc):
            # the in-memory size: an upper bound of what the compressed file needs
            raise _full(path, int(frame.estimated_size()), exc) from exc
        raise


def clean_stale_tmp(data_dir: str | Path, older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Remove the temporary files interrupted writers left in a data dir; the ones removed.

    Looked for where the atomic writers write (the data dir, ``series/`` and its year
    folders); only files untouched for ``older_than_s`` (no live writer leaves one so long).
    """
    root = Path(data_dir)
    folders = [root, root / "series", *sorted((root / "series").glob("[0-9][0-9][0-9][0-9]"))]
    limit = time.time() - older_than_s
    removed: list[Path] = []
    for folder in folders:
        for tmp in folder.glob(TMP_GLOB):
            try:
                if tmp.is_file() and tmp.stat().st_mtime < limit:
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:
                continue  # gone meanwhile, or not ours to remove: never fails a run
    return removed


#: Parquet metadata key of a pack's index (JSON: ISO day -> token).
PACK_INDEX_KEY = "pyschedvisu.pack.days"
PACK_SUFFIX = ".series.pack.parquet"


def day_token(manifest: Mapping[str, Any]) -> str:
    """What identifies one write of a day: the manifest's ``write_id`` (a fresh UUID per write).

    Manifests written before write ids existed are identified by a digest of their content.
    """
    write_id = manifest.get("write_id")
    if isinstance(write_id, str) and write_id:
        return write_id
    text = json.dumps(manifest, sort_keys=True, default=str)
    return "m-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def conform(frame: pl.DataFrame, target: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly the columns of ``target``, in order and cast (missing = null)."""
    cols = []
    for name, dtype in target.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def scan_stored(paths: list[Path], target: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Day files written with ``target`` or an older form of it: a column added since (the
    accession number in store version 2) reads as null, never as an error."""
    return pl.scan_parquet(paths, schema=target, missing_columns="insert", extra_columns="ignore")


def read_manifest(path: str | Path) -> Any:
    """The parsed JSON of a day manifest at ``path``; None when there is none.

    Raises :class:`StoreError` naming the file when it cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DayUnreadableError(
            f"{path}: unreadable manifest ({exc})", day=_day_of(Path(path)), path=str(path)
        ) from exc


def _day_of(path: Path) -> dt.date | None:
    """The day a store file is about (``2024-03-04.series.parquet``), if any."""
    try:
        return dt.date.fromisoformat(path.name.split(".")[0])
    except ValueError:
        return None


class SeriesStore:
    """Per-day series files under ``<data_dir>/series``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "series"

    # -- paths -----------------------------------------------------------------------
    def path(self, day: dt.date, kind: str) -> Path:
        ext = "json" if kind == "manifest" else "parquet"
        return self.root / f"{day.year:04d}" / f"{day.isoformat()}.{kind}.{ext}"

    # -- days ------------------------------------------------------------------------
    def manifest(self, day: dt.date) -> dict[str, Any] | None:
        """The manifest of ``day``, or None when the day is not (completely) stored."""
        man: dict[str, Any] | None = read_manifest(self.path(day, "manifest"))
        return man

    def final_manifest(self, day: dt.date, fingerprint: str) -> dict[str, Any] | None:
        """The manifest of ``day`` when it is stored *final* with this retrieval fingerprint.

        None otherwise: a day to fetch (not stored, stored by other rules, too recent to be
        final, or a manifest that does not say ``final``: fetching again is the safe side).
        Raises :class:`StoreError` when the manifest cannot be read.
        """
        man = self.manifest(day)
        if man is None or man.get("fingerprint") != fingerprint or man.get("final") is not True:
            return None
        return man

    def final_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Days from ``start`` to ``end`` stored *final* (whatever rules stored them), sorted.

        A day still within ``retrieve.final_after_hours`` may yet change: not final. A manifest
        that does not say ``final`` is not final (as in :meth:`final_manifest`); an unreadable
        one counts as not retrieved, with a warning.
        """
        out: list[dt.date] = []
        for year in range(start.year, end.year + 1):
            for path in sorted((self.root / f"{year:04d}").glob("*.manifest.json")):
                try:
                    day = dt.date.fromisoformat(path.name.split(".")[0])
                except ValueError:
                    continue
                if not start <= day <= end:
                    continue
                try:
                    man = read_manifest(path)
                except StoreError as exc:
                    log.warning("%s", exc)
                    continue
                if isinstance(man, dict) and man.get("final") is True:
                    out.append(day)
        return out

    def days(self) -> list[dt.date]:
        """Every completely stored day, sorted."""
        out = []
        for path in self.root.glob("*/*.manifest.json"):
            out.append(dt.date.fromisoformat(path.name.split(".")[0]))
        return sorted(out)

    def write_day(
        self,
        day: dt.date,
        series: pl.DataFrame,
        failed: pl.DataFrame,
        excluded: pl.DataFrame,
        manifest: dict[str, Any],
    ) -> None:
        """Store one complete day; the manifest goes last so readers never see half a day.

        Every file carries the ``site`` column: ``manifest["site"]``, else the one-department
        site (:data:`schema.DEFAULT_SITE`).
        """
        site = str(manifest.get("site") or schema.DEFAULT_SITE)
        self.path(day, "manifest").unlink(missing_ok=True)
        for kind, frame in (("series", series), ("failed", failed), ("excluded", excluded)):
            stored = schema.with_site(conform(frame, KINDS[kind]), site)
            atomic_write_parquet(self.path(day, kind), stored)
        man = {
            "day": day.isoformat(),
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "write_id": uuid.uuid4().hex,  # tells two writes apart within one second (packs)
            "counts": {
                "series": series.height,
                "failed": failed.height,
                "excluded": excluded.height,
            },
            **manifest,
            "site": site,
        }
        atomic_write_bytes(
            self.path(day, "manifest"),
            json.dumps(man, indent=2, sort_keys=True, default=str).encode(),
        )

    def load(
        self, kind: str = "series", days: Iterable[dt.date] | None = None, site: str | None = None
    ) -> pl.DataFrame:
        """Concatenate ``kind`` frames of the stored ``days`` (all stored days when None).

        ``site``: also read the ``site`` column, files written before it existed belonging to
        ``site`` (this store's). Raises :class:`DayUnreadableError` naming the first day and
        file that cannot be read.
        """
        target = KINDS[kind] if site is None else {**KINDS[kind], schema.SITE_COLUMN: pl.String()}
        wanted = (
            self.days() if days is None else [d for d in days if self.path(d, "manifest").exists()]
        )
        paths = [self.path(d, kind) for d in wanted]
        paths = [p for p in paths if p.exists()]
        if not paths:
            return schema.empty(target)
        try:
            # files of an older store version may lack newer columns: null there
            frame = scan_stored(paths, target).collect().pipe(conform, target)
            return frame if site is None else schema.site_of_rows(frame, site)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise self._unreadable(paths, kind, exc) from exc

    def _unreadable(self, paths: list[Path], kind: str, exc: BaseException) -> StoreError:
        """The error naming the day file that made reading ``paths`` fail (checked one by one)."""
        for path in paths:
            try:
                pl.read_parquet_schema(path)
                pl.scan_parquet(path).select(pl.len()).collect()
            except (OSError, pl.exceptions.PolarsError) as one:
                day = _day_of(path)
                return DayUnreadableError(
                    f"day {day}: cannot read {path} ({one})", day=day, path=str(path)
                )
        return StoreError(f"{self.root}: cannot read stored {kind} ({exc})")

    def quarantine(self, day: dt.date) -> Path | None:
        """Move the files of ``day`` aside to ``Y/D.corrupt-<time>/`` (manifest first: the day
        is then simply not stored, and retrieved again); that folder, None when nothing moved."""
        present = [
            p
            for p in (self.path(day, k) for k in ("manifest", "series", "failed", "excluded"))
            if p.exists()
        ]
        if not present:
            return None
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        dest = present[0].parent / f"{day.isoformat()}.corrupt-{stamp}"
        n = 1
        while dest.exists():
            n += 1
            dest = present[0].parent / f"{day.isoformat()}.corrupt-{stamp}-{n}"
        dest.mkdir(parents=True)
        moved = 0
        for path in present:
            try:
                os.replace(path, dest / path.name)
                moved += 1
            except FileNotFoundError:
                continue  # moved by another run meanwhile
        return dest if moved else None

    def manifests(self, days: Iterable[dt.date] | None = None) -> dict[dt.date, dict[str, Any]]:
        """Manifests of the stored ``days`` (all when None)."""
        out = {}
        for d in self.days() if days is None else days:
            man = self.manifest(d)
            if man is not None:
                out[d] = man
        return out

    # -- yearly packs ------------------------------------------------------------------
    def pack_path(self, year: int) -> Path:
        return self.root / f"{year:04d}{PACK_SUFFIX}"

    def pack_index(self, year: int) -> dict[str, str]:
        """``{ISO day: token}`` of the days held by the pack of ``year`` ({} when none/unusable)."""
        try:
            with self.pack_path(year).open("rb") as fh:
                return _pack_index(fh)
        except OSError:
            return {}

    def read_series(self, tokens: Mapping[dt.date, str]) -> tuple[pl.DataFrame, list[dt.date]]:
        """(kept series of the stored days of ``tokens``, the days read from their day files).

        ``tokens``: day -> :func:`day_token` of its manifest as just read. Rows in
        ``SERIES_SCHEMA``. A day comes from its year's pack when the pack holds that very write
        of it (same token), else from its day file.
        """
        by_year: dict[int, list[dt.date]] = {}
        for day in sorted(tokens):
            by_year.setdefault(day.year, []).append(day)
        cast = [pl.col(c).cast(t) for c, t in schema.SERIES_SCHEMA.items()]
        frames: list[pl.DataFrame] = []
        unpacked: list[dt.date] = []
        for year, days in by_year.items():
            packed, held = self._read_pack(year, {d: tokens[d] for d in days})
            if held:
                frames.append(conform(packed, schema.SERIES_SCHEMA))
            unpacked += [d for d in days if d not in held]
        paths = [p for p in (self.path(d, "series") for d in unpacked) if p.exists()]
        try:
            if paths:
                frames.append(scan_stored(paths, schema.SERIES_SCHEMA).select(cast).collect())
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise self._unreadable(paths, "series", exc) from exc
        if not frames:
            return schema.empty(schema.SERIES_SCHEMA), unpacked
        return pl.concat(frames), unpacked

    def _read_pack(
        self, year: int, tokens: Mapping[dt.date, str]
    ) -> tuple[pl.DataFrame, set[dt.date]]:
        """(rows, days) of the days of ``tokens`` that the pack holds in that very write."""
        try:
            # Index and rows from one open file: a pack replaced meanwhile cannot mix them.
            with self.pack_path(year).open("rb") as fh:
                index = _pack_index(fh)
                days = [d for d, t in tokens.items() if index.get(d.isoformat()) == t]
                if not days:
                    return schema.empty(schema.SERIES_SCHEMA), set()
                fh.seek(0)
                rows = pl.read_parquet(fh)
        except (OSError, pl.exceptions.PolarsError):
            # no pack or an unreadable one: the day files are read instead
            return schema.empty(schema.SERIES_SCHEMA), set()
        return rows.filter(pl.col("date").is_in(days)), set(days)

    def write_packs(self, series: pl.DataFrame, tokens: Mapping[dt.date, str]) -> list[int]:
        """Put the days of ``tokens`` (day -> :func:`day_token`; their rows are in ``series``,
        read for those very writes) into their years' packs, keeping the other days a pack
        already holds; returns the years rewritten.

        Each pack is rewritten atomically; a lock serialises writers of one store.
        """
        years = sorted({d.year for d in tokens})
        # Rows as read come day by day: a year is then a zero-copy slice, not a filter.
        dates = series["date"]
        if not dates.is_sorted():
            series = series.sort("date", maintain_order=True)
            dates = series["date"]
        with self._pack_lock():
            for year in years:
                days = {d: t for d, t in tokens.items() if d.year == year}
                index = self.pack_index(year)
                keep = sorted(k for k in index if dt.date.fromisoformat(k) not in days)
                lo, hi = (
                    int(dates.search_sorted(dt.date(y, 1, 1), side="left"))
                    for y in (year, year + 1)
                )
                this_year = series.slice(lo, hi - lo)
                if this_year.select(pl.col("date").n_unique()).item() > len(days):
                    this_year = this_year.filter(pl.col("date").is_in(sorted(days)))
                frames = [this_year]
                if keep:
                    kept = scan_stored([self.pack_path(year)], schema.SERIES_SCHEMA).filter(
                        pl.col("date").is_in([dt.date.fromisoformat(k) for k in keep])
                    )
                    frames.insert(0, kept.collect())
                index = {k: index[k] for k in keep}
                index.update({d.isoformat(): t for d, t in days.items()})
                table = pl.concat([conform(f, schema.SERIES_SCHEMA) for f in frames])
                if not table["date"].is_sorted():
                    table = table.sort("date", maintain_order=True)
                atomic_write_parquet(
                    self.pack_path(year),
                    table,
                    {PACK_INDEX_KEY: json.dumps(dict(sorted(index.items())))},
                    compression_level=1,  # half the CPU of the default, a third larger
                )
        return years

    def _pack_lock(self) -> AbstractContextManager[None]:
        return file_lock(self.root / ".pack.lock")


def _pack_index(fh: Any) -> dict[str, str]:
    try:
        index = json.loads(pl.read_parquet_metadata(fh).get(PACK_INDEX_KEY, "{}"))
    except (ValueError, pl.exceptions.PolarsError):
        return {}
    if not isinstance(index, dict):
        return {}
    out = {}
    for key, token in index.items():
        try:
            out[dt.date.fromisoformat(str(key)).isoformat()] = str(token)
        except ValueError:
            continue  # not a day: ignored, the pack is rewritten without it
    return out
