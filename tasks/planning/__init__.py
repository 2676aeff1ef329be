"""What to do and where: the resume ledger, sharding, fan-out, pricing."""
