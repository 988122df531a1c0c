"""Load the synthetic demo department into an Orthanc PACS (compose service ``demo-loader``).

Generates the department once (``--out``, incremental), waits for Orthanc's REST API (bounded
polling), then uploads every DICOM file (POST /instances; re-uploads are harmless).

    python docker/load_orthanc.py --url http://orthanc:8042 --out /data/department --weeks 26
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def last_friday(today: dt.date) -> dt.date:
    """The last Friday strictly before ``today`` (the demo's end date)."""
    back = (today.weekday() - 4) % 7 or 7
    return today - dt.timedelta(days=back)


def wait_for(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200, at most ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url}: not ready after {timeout_s:.0f}s")
        time.sleep(1.0)  # bounded readiness polling of a service starting in another container


def upload(url: str, files: list[Path]) -> int:
    """POST every file to ``url``/instances; returns how many Orthanc accepted."""
    ok = 0
    for i, path in enumerate(files, 1):
        req = urllib.request.Request(
            f"{url}/instances",
            data=path.read_bytes(),
            method="POST",
            headers={"Content-Type": "application/dicom"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            ok += resp.status == 200
        if i % 1000 == 0:
            print(f"  {i}/{len(files)} instances", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8042", help="Orthanc REST base URL")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo/department"),
        help="Where the department is generated",
    )
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument(
        "--end", type=dt.date.fromisoformat, default=None, help="Last day (default: last Friday)"
    )
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    from pyschedvisu.synth import generate

    end = args.end or last_friday(dt.date.today())
    start = end - dt.timedelta(weeks=args.weeks) + dt.timedelta(days=3)
    generate(args.out, start, end, args.seed)
    files = sorted(p for p in (args.out / "dicom").rglob("*") if p.is_file())
    wait_for(f"{args.url}/system", args.timeout)
    n = upload(args.url, files)
    print(f"{n}/{len(files)} instances stored in Orthanc at {args.url}")
    return 0 if n == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
