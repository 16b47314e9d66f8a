"""The pure core: OCI values, the wire format, distributions, targets and selection.

Nothing here does I/O beyond reading a local file it is handed; nothing imports requests."""
