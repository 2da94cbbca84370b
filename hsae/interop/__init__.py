"""Other libraries' formats, read and written (SAELens)."""
