"""`python -m forwarder` is the same as the `siem-forwarder` command."""

from forwarder.cli import main

raise SystemExit(main())
