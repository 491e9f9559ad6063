"""Where the runner's CPU goes: a breakdown of py-spy's collapsed stacks.

    .venv/bin/python bench/profile_breakdown.py bench/results/p1_profile_*.txt [--runs N]

Reads ``py-spy record --subprocesses --format raw`` output (idle samples excluded, so
a sample is CPU time) and prints, per process role (scheduler loop, django-q2
pusher/monitor/sentinel, workers), the CPU it used and how that splits into a few
named kinds of work. Each sample is counted once, under the innermost frame that
names a kind (spawning a child counts as spawning even though the ORM called it).
With ``--runs`` the times are also given per run.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

RATE_HZ = 100  # what p1_fire_precision.py asks py-spy for

# (role, a frame that only that role's stacks hold), first match wins.
ROLES = (
    ("worker", "worker (django_q/worker.py"),
    ("worker", "runner/pool.py"),
    ("pusher", "pusher (django_q/pusher.py"),
    ("monitor", "monitor (django_q/monitor.py"),
    ("sentinel", "django_q/cluster.py"),
    ("scheduler loop", "runner/daemon.py"),
)
# (kind, pattern over one frame), innermost match wins.
KINDS = (
    ("spawn (fork/exec)", re.compile(r"_execute_child|_fork_exec|fork_exec|posix_spawn")),
    ("read output / wait child", re.compile(r"runner/execution/(process|output|tree|held).py")),
    ("database driver", re.compile(r"sqlite3/|psycopg|\(execute \(|_execute \(|executemany")),
    ("ORM / SQL compile", re.compile(r"django/db/")),
    ("django-q2 signing/pickle", re.compile(r"django_q/(signing|core_signing)|pickle")),
    ("django-q2 broker", re.compile(r"django_q/brokers")),
    ("multiprocessing queues", re.compile(r"multiprocessing/")),
    ("threads", re.compile(r"threading.py")),
    ("logging", re.compile(r"logging/")),
    ("run record (runner.models)", re.compile(r"runner/models.py")),
    ("scheduler (plans, cron)", re.compile(r"runner/scheduler.py|croniter|runner/schedule")),
    ("runner other", re.compile(r"runner/")),
)


def parse(text: str) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def role_of(frames: tuple[str, ...]) -> str:
    joined = ";".join(frames)
    for role, marker in ROLES:
        if marker in joined:
            return role
    return "other"


def kind_of(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        for kind, pattern in KINDS:
            if pattern.search(frame):
                return kind
    return "python / interpreter"


def breakdown(text: str, runs: int = 0) -> str:
    """A text table: per role, CPU ms (and per run), then its kinds in percent."""
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    for frames, count in parse(text).items():
        by_role[role_of(frames)][kind_of(frames)] += count
    total = sum(sum(kinds.values()) for kinds in by_role.values())
    lines = [f"py-spy: {total / RATE_HZ:.1f} s of CPU sampled in the runner's processes"]
    for role, kinds in sorted(by_role.items(), key=lambda item: -sum(item[1].values())):
        samples = sum(kinds.values())
        cpu_ms = samples * 1000 / RATE_HZ
        per_run = f", {cpu_ms / runs:.2f} ms/run" if runs else ""
        lines.append(f"  {role}: {cpu_ms:.0f} ms ({samples * 100 / total:.0f}%{per_run})")
        for kind, n in kinds.most_common():
            if n * 100 / samples >= 2:
                lines.append(f"      {kind}: {n * 100 / samples:.0f}%")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--runs", type=int, default=0, help="runs in the sampled window")
    args = parser.parse_args()
    with open(args.profile, encoding="utf-8") as handle:
        print(breakdown(handle.read(), args.runs))


if __name__ == "__main__":
    main()
