"""forwarder: pull cloud vendors' audit logs and deliver them to SIEMs."""

__version__ = "0.1.0"
