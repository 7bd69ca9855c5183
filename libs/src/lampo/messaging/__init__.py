"""Kafka plumbing shared by every service: topics, reliable consumers, outbox and inbox."""
