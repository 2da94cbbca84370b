"""First-party encoders (entry-point group `hsae.encoders`)."""
