"""Speakers and languages: who spoke when (diarize.py, labels.py) and in which language (language.py)."""
