"""ruff's flake8-bandit port (``S`` rules) against bandit on real projects.

The ``security`` dimension runs ruff (``--select S``) by default and bandit only when the
project configures it or asks for it: this script is the measurement behind that choice.
For each project it downloads the sdist from PyPI (``pip download --no-deps --no-binary
:all:``) into ``bench/.work/`` and runs, on the same source directory, side by side:

* ``bandit -r SRC -f json -q``
* ``ruff check --isolated --preview --select S --no-fix --exit-zero --output-format json SRC``

It prints, on the rules both implement (``S``\\ NNN is ``B``\\ NNN), the findings that match
(same file, line and rule), those only one tool reports, the severity the gate gives a
matched finding under each engine (bandit's own severity and confidence, or
``pytest_orchestrator.severity.bandit_levels`` for ruff) and the median wall time of each
tool over ``--rounds`` runs. Standard library and the installed tools only.

Usage: ``python bench/security_engines.py [--rounds N]`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_vs_sequential import unpack

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "security"
#: (distribution, version, source directory inside the sdist)
PROJECTS = [
    ("click", "8.1.8", "src/click"),
    ("requests", "2.32.3", "src/requests"),
    ("boltons", "25.0.0", "boltons"),
]


def fetch(name: str, version: str) -> Path:
    """The unpacked sdist of ``name==version`` (downloaded once)."""
    project = WORK / f"{name}-{version}"
    if project.is_dir():
        return project
    dist = WORK / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    print(f"downloading {name} {version} sdist from PyPI ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"{name}=={version}", "-d", str(dist)],
        check=True,
    )  # fmt: skip
    [sdist] = dist.glob(f"{name}-{version}.tar.gz")
    return unpack(sdist, WORK)


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done.stdout


def bandit(src: str, cwd: Path) -> tuple[float, dict[tuple[str, int, str], str]]:
    """Seconds and {(file, line, Bnnn): P-level}, scored as the gate scores bandit."""
    from pytest_orchestrator.severity import bandit_severity

    seconds, out = timed([sys.executable, "-m", "bandit", "-r", src, "-f", "json", "-q"], cwd)
    found = {}
    for item in json.loads(out)["results"]:
        key = (Path(item["filename"]).as_posix(), item["line_number"], item["test_id"])
        sev = bandit_severity(item["test_id"], item["issue_severity"], item["issue_confidence"], {})
        found[key] = sev.value
    return seconds, found


def ruff(src: str, cwd: Path) -> tuple[float, dict[tuple[str, int, str], str]]:
    """Seconds and {(file, line, Bnnn): P-level}, scored as the gate's ruff engine does."""
    from pytest_orchestrator.severity import bandit_levels, bandit_severity

    exe = shutil.which("ruff") or "ruff"
    argv = [exe, "check", "--isolated", "--preview", "--select", "S", "--no-fix",
            "--exit-zero", "--output-format", "json", src]  # fmt: skip
    seconds, out = timed(argv, cwd)
    found = {}
    for item in json.loads(out):
        code = item["code"]
        test_id = "B" + code[1:]
        path = Path(item["filename"]).relative_to(cwd).as_posix()
        severity = bandit_severity(test_id, *bandit_levels(code, item["message"]), {})
        found[(path, item["location"]["row"], test_id)] = severity.value
    return seconds, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each tool")
    args = parser.parse_args(argv)
    from bandit.core import extension_loader

    manager = extension_loader.MANAGER
    bandit_ids = set(manager.plugins_by_id) | {
        b["id"] for tests in manager.blacklist.values() for b in tests
    }
    listing = subprocess.run(
        [shutil.which("ruff") or "ruff", "rule", "--all", "--output-format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    ruff_ids = {"B" + r["code"][1:] for r in json.loads(listing) if r["linter"] == "flake8-bandit"}
    shared = bandit_ids & ruff_ids
    print(f"rules: {len(shared)} shared; bandit only: {' '.join(sorted(bandit_ids - ruff_ids))}")
    print(f"       ruff only: {' '.join('S' + b[1:] for b in sorted(ruff_ids - bandit_ids))}")
    totals: Counter[str] = Counter()
    for name, version, src in PROJECTS:
        project = fetch(name, version)
        b_times, r_times = [], []
        for _ in range(args.rounds):
            b_seconds, by_bandit = bandit(src, project)
            r_seconds, by_ruff = ruff(src, project)
            b_times.append(b_seconds)
            r_times.append(r_seconds)
        b_keys = {k for k in by_bandit if k[2] in shared}
        r_keys = {k for k in by_ruff if k[2] in shared}
        both = b_keys & r_keys
        same = sum(by_bandit[k] == by_ruff[k] for k in both)
        print(
            f"\n{name} {version} ({src}): bandit {len(b_keys)}, ruff {len(r_keys)} findings "
            f"on shared rules; {len(both)} match, severity equal on {same}; "
            f"bandit {statistics.median(b_times):.2f} s, ruff {statistics.median(r_times):.2f} s "
            f"(ratio {statistics.median(r_times) / statistics.median(b_times):.2f}x)"
        )
        for key in sorted(b_keys - r_keys):
            print(f"  bandit only: {key[0]}:{key[1]} {key[2]}")
        for key in sorted(r_keys - b_keys):
            print(f"  ruff only:   {key[0]}:{key[1]} S{key[2][1:]}")
        for key in sorted(k for k in both if by_bandit[k] != by_ruff[k]):
            print(f"  severity:    {key[0]}:{key[1]} {key[2]} bandit {by_bandit[key]}, "
                  f"ruff {by_ruff[key]}")  # fmt: skip
        totals.update(bandit=len(b_keys), ruff=len(r_keys), both=len(both), same=same)
    print(
        f"\nall: bandit {totals['bandit']}, ruff {totals['ruff']}, {totals['both']} match "
        f"({totals['both'] / max(totals['bandit'], 1):.0%} of bandit's), severity equal on "
        f"{totals['same']} of them"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
