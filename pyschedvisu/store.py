"""The durable series store: one set of files per retrieved day under ``<data_dir>/series``.

Layout, for a day D in year Y::

    <data_dir>/series/Y/D.series.parquet     kept series      (schema.SERIES_SCHEMA)
    <data_dir>/series/Y/D.failed.parquet     failed series    (schema.FAILED_SCHEMA)
    <data_dir>/series/Y/D.excluded.parquet   excluded on purpose (schema.EXCLUDED_SCHEMA)
    <data_dir>/series/Y/D.manifest.json      written last: the day is complete iff it exists

Every file is written to a temporary name in the same folder and renamed, so an
interrupted run never leaves a half-written file, and a day without a manifest is
simply retrieved again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu_core import schema
from pyschedvisu_core.errors import StoreError


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + rename (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: Path, frame: pl.DataFrame) -> None:
    """Write ``frame`` as Parquet to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def conform(frame: pl.DataFrame, target: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly the columns of ``target``, in order and cast (missing = null)."""
    cols = []
    for name, dtype in target.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


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
        path = self.path(day, "manifest")
        try:
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{path}: unreadable manifest ({exc}); delete it to retrieve the day again"
            ) from exc

    def has_day(
        self, day: dt.date, fingerprint: str | None = None, *, final_only: bool = True
    ) -> bool:
        """True when ``day`` is stored (with this retrieval fingerprint, and final if asked)."""
        man = self.manifest(day)
        if man is None:
            return False
        if fingerprint is not None and man.get("fingerprint") != fingerprint:
            return False
        return not (final_only and not man.get("final", True))

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
        """Store one complete day; the manifest goes last so readers never see half a day."""
        self.path(day, "manifest").unlink(missing_ok=True)
        for kind, frame in (("series", series), ("failed", failed), ("excluded", excluded)):
            atomic_write_parquet(self.path(day, kind), conform(frame, KINDS[kind]))
        man = {
            "day": day.isoformat(),
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "counts": {
                "series": series.height,
                "failed": failed.height,
                "excluded": excluded.height,
            },
            **manifest,
        }
        atomic_write_bytes(
            self.path(day, "manifest"),
            json.dumps(man, indent=2, sort_keys=True, default=str).encode(),
        )

    def load(self, kind: str = "series", days: Iterable[dt.date] | None = None) -> pl.DataFrame:
        """Concatenate ``kind`` frames of the stored ``days`` (all stored days when None)."""
        wanted = (
            self.days() if days is None else [d for d in days if self.path(d, "manifest").exists()]
        )
        paths = [self.path(d, kind) for d in wanted]
        paths = [p for p in paths if p.exists()]
        if not paths:
            return schema.empty(KINDS[kind])
        try:
            return pl.read_parquet(paths, schema=None).pipe(conform, KINDS[kind])
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StoreError(f"{self.root}: cannot read stored {kind} ({exc})") from exc

    def manifests(self, days: Iterable[dt.date] | None = None) -> dict[dt.date, dict[str, Any]]:
        """Manifests of the stored ``days`` (all when None)."""
        out = {}
        for d in self.days() if days is None else days:
            man = self.manifest(d)
            if man is not None:
                out[d] = man
        return out
