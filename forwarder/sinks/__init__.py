"""Delivery targets. Each module knows one target; see ``base.Sink``."""
