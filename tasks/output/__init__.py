"""Everything written to DIR: the layout, transcripts, manifest, runs, reports."""
