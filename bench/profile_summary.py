#!/usr/bin/env python3
"""Per-role and per-task time of an ansible-playbook log written with profile_tasks.

  bench/profile_summary.py LOG [--top N]

profile_tasks prints, under each TASK banner, a line ending in "(0:00:01.234)": the
duration of the task before it. Summing those by task and by role gives where a run's
time went (the same task name in two plays counts once per play run).
"""

import argparse
import collections
import re

TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+")
STAMP = re.compile(r"\((\d+):(\d\d):(\d\d\.\d+)\)\s+\d+:\d\d:\d\d\.\d+ \*+\s*$")
RECAP = re.compile(r"^PLAY RECAP")


def role_of(task):
    return task.split(" : ", 1)[0] if " : " in task else "(playbook)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    with open(args.log) as f:
        lines = f.read().splitlines()
    # the duration printed under a banner is the previous task's: shift by one
    stamps, names = [], []
    for line in lines:
        t = TASK.match(line)
        if t:
            names.append(t.group(1))
            continue
        m = STAMP.search(line)
        if m:
            h, mnt, s = m.groups()
            stamps.append(int(h) * 3600 + int(mnt) * 60 + float(s))
    # stamps[i] is printed under names[i] and measures names[i-1]
    pairs = list(zip(names[:-1], stamps[1 : len(names)]))
    by_task, by_role = collections.Counter(), collections.Counter()
    for name, secs in pairs:
        by_task[name] += secs
        by_role[role_of(name)] += secs
    total = sum(by_role.values())
    print(f"{len(pairs)} task runs, {total:.1f} s in tasks\n\nby role:")
    for role, secs in by_role.most_common():
        print(f"  {secs:7.1f}  {role}")
    print(f"\ntop {args.top} tasks:")
    for name, secs in by_task.most_common(args.top):
        print(f"  {secs:7.1f}  {name}")


if __name__ == "__main__":
    main()
