"""Alert hooks: webhooks that fire when a registry's health changes.

- :mod:`regdb.alerts.model`    what a hook is, its validation and its public (secret-free) view
- :mod:`regdb.alerts.payload`  events and the bodies sent for them (CloudEvents, Slack), signing
- :mod:`regdb.alerts.store`    hooks and their delivery logs in Redis
- :mod:`regdb.alerts.deliver`  the RQ delivery job and ``dispatch`` (events -> enqueued jobs)
"""
