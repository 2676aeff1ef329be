"""A transcript's identity: the config hash, half of a file's key in the ledger (content × config).

The hash covers what decides the text: the engine, the model's weights (a cheap fingerprint), the
decoding fields of `EngineConfig`, and the resolved value of every engine option that can change the
text, defaults included (`options.text_options`). A row's key therefore always says what produced it:
when a default changes (as `audio_context` did, fit → full), files made under the old default get a
new key and are done again, and the run's summary counts them (`files_reconfigured`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tasks.engines.base import EngineConfig
from tasks.engines.options import text_options


def model_fingerprint(model: str) -> str:
    """Identify a model's weights cheaply: names, sizes and head/tail bytes of its files.

    A hub id without a local folder is its own fingerprint.
    """
    path = Path(model)
    if not path.exists():
        return model
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if file != path else file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(65_536))
            if size > 131_072:
                handle.seek(-65_536, 2)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def config_hash(config: EngineConfig, resolved_model: str) -> str:
    """Half of a file's identity in the ledger: same content × same hash = already done."""
    payload = config.output_fields() | {"options": text_options(config), "model": model_fingerprint(resolved_model)}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
