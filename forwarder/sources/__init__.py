"""Vendor sources. Each module knows one vendor's API; see ``base.Source``."""
