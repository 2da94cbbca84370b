"""First-party extractors (entry-point group `hsae.extractors`)."""
