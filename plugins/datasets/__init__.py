"""First-party datasets (entry-point group `hsae.datasets`)."""
