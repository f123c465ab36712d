"""
Handlers that tests/test_fleet.py runs inside real `twistd pace` workers:
each records when it started, and in which process, on the "starts" list.
"""

from __future__ import annotations

import json
import os
import time

import pace


def stamp(job: dict):
    # The start time is taken first thing: what the limit promises is about
    # when jobs start.
    record = json.dumps({"t": time.time(), "pid": os.getpid(), "args": job["args"]})
    return pace.enqueue("starts", "Start", record)


def fail_odd(job: dict):
    if job["args"][0] % 2:
        raise ValueError(f"odd job {job['args'][0]}")
    return stamp(job)
