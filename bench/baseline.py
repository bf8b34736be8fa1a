"""``refresh_engine.py --baseline REF``: the same benchmark on another version, back to back.

Absolute figures do not travel between machines (they differ by up to 1.8x on
the same code); a ratio measured in one run does. This checks REF out into a
temporary git worktree with its own virtualenv (REF's requirements.txt),
runs REF's own ``bench/refresh_engine.py`` there with the same engine
arguments (same number of connections, spread, provider latency, worker
configurations), reads its JSON, and removes the worktree. The current
engine then runs right after, and ``compare`` prints both side by side.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Options that concern this run only: the baseline runs the engine phase, into its own results.
_OWN_OPTIONS = ("--baseline", "--phases", "--results-dir", "--profile")


def engine_argv(argv: list[str]) -> list[str]:
    """``argv`` without our own options (``--opt value``, ``--opt=value``, a bare ``--baseline``)."""
    kept, i = [], 0
    while i < len(argv):
        name, has_value = argv[i].split("=", 1)[0], "=" in argv[i]
        if name not in _OWN_OPTIONS:
            kept.append(argv[i])
            i += 1
            continue
        value_follows = not has_value and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        i += 2 if value_follows else 1
    return kept


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run(ref: str, argv: list[str], log) -> dict:
    """Run REF's engine benchmark; returns its JSON report (with ``ref`` and ``commit`` added)."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    work = Path(tempfile.mkdtemp(prefix="tokenkeeper-baseline-"))
    tree, results = work / "tree", work / "results"
    try:
        log(f"baseline: {ref} ({commit[:10]}) into {tree}")
        _git("worktree", "add", "--detach", str(tree), commit)
        log("baseline: creating its virtualenv (its requirements.txt)")
        subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
        subprocess.run(
            [str(tree / ".venv/bin/pip"), "install", "--quiet", "-r", str(tree / "requirements.txt")], check=True
        )
        command = [
            str(tree / ".venv/bin/python"),
            str(tree / "bench/refresh_engine.py"),
            *argv,
            "--phases",
            "engine",
            "--results-dir",
            str(results),
        ]
        log(f"baseline: running {' '.join(command[1:])}")
        subprocess.run(command, cwd=tree, check=True)
        [report_file] = sorted(results.glob("refresh_engine-*.json"))
        report = json.loads(report_file.read_text())
        report.update(ref=ref, commit=commit)
        return report
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def compare(baseline: dict, current: dict) -> list[dict]:
    """Per worker configuration: both figures and their ratio."""
    rows = []
    old_by_config = {r["config"]: r for r in baseline.get("engine") or []}
    for new in current.get("engine") or []:
        old = old_by_config.get(new["config"])
        if old is None:
            continue
        old_rate, new_rate = old.get("steady_per_s"), new.get("steady_per_s")
        old_ms = (old.get("cpu_ms_per_refresh") or {}).get("engine")
        new_ms = (new.get("cpu_ms_per_refresh") or {}).get("engine")
        rows.append(
            {
                "config": new["config"],
                "steady_per_s": [old_rate, new_rate],
                "throughput_ratio": round(new_rate / old_rate, 2) if old_rate and new_rate else None,
                "cpu_ms_per_refresh": [old_ms, new_ms],
                "cpu_ratio": round(new_ms / old_ms, 2) if old_ms and new_ms else None,
                "inside_window_pct": [old.get("inside_window_pct"), new.get("inside_window_pct")],
            }
        )
    return rows


def print_comparison(rows: list[dict], baseline: dict) -> None:
    print(f"\n=== Against the baseline {baseline['ref']} ({baseline['commit'][:10]}), same machine, back to back ===")
    print("config         steady/s base -> now (x)     CPU ms/refresh base -> now (x)   inside% base -> now")
    for r in rows:
        (r0, r1), (c0, c1), (i0, i1) = r["steady_per_s"], r["cpu_ms_per_refresh"], r["inside_window_pct"]
        print(
            f"{r['config']:<14} {r0!s:>7} -> {r1!s:<7} ({r['throughput_ratio']}x)   "
            f"{c0!s:>7} -> {c1!s:<7} ({r['cpu_ratio']}x)      {i0} -> {i1}"
        )
