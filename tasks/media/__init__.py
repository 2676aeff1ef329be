"""Reading the library: where files come from, the scan, decoding."""
