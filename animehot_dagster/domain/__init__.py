"""The pure core: rules and figures with no I/O. Everything else calls into this package."""
