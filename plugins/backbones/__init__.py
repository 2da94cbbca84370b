"""First-party backbones (entry-point group `hsae.backbones`)."""
