"""First-party judges (entry-point group `hsae.judges`)."""
