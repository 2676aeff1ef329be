"""Checking what the engine wrote: VAD, guards, the safer retry, the WER canary."""
