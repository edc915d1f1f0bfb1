"""Prometheus metrics: counters the workers keep in Redis, and the scrape-time collector."""
