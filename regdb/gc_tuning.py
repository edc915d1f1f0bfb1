"""The garbage collector of a long-running regdb process, set once after start-up.

Requests and probe batches allocate many short-lived containers; nearly all of them die by
reference counting, so the cyclic collector mostly walks survivors for nothing. Each process
calls :func:`settle_gc` once every module is loaded."""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the young generation (Python's default: 700).

Measured in the worker: a probe batch allocates hundreds of thousands of short-lived objects;
at 700 the collector ran about 130 times per 500 registries (0.9-1.1 s of collection over 18
batches of 500, against 0.55 s at 10,000), for a young generation that stays a few MB at most.
Measured in the API under creates (wrk, 50 connections): 579 collections took 0.30 s of 7.8 s
of CPU at 700, one collection at 10,000."""


def settle_gc() -> None:
    """Move what exists now (modules, app, settings) out of the collector's sight and collect
    the young generation less often.

    Frozen objects are never scanned again; in a process that forks (RQ's work horses) this
    also keeps a collection in the child from writing to every inherited object, which would
    copy most of the heap page by page (measured: about 60 ms of CPU per job, against 6 ms
    frozen)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
