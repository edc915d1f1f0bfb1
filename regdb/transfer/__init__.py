"""Moving a catalog in and out of regdb: `regdb export` and `regdb import` (NDJSON), including
the old MongoDB service's `mongoexport` output."""
