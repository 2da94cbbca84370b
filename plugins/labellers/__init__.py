"""First-party labellers (entry-point group `hsae.labellers`)."""
