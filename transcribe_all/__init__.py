"""transcribe-all: transcribe whole media archives on GPUs, orchestrated by Prefect."""

__version__ = "0.1.0"
