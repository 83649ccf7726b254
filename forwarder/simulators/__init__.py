"""Local vendor simulators: strict, deterministic stand-ins for the vendor APIs."""
