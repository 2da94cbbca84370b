"""The hierarchy browser: a finished run as a static site (hsae browse)."""
