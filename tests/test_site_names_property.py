"""Any file name the file system allows plays on the site: generated names (bytes: `%`, spaces, `#`, `?`,
control characters, bytes that are not UTF-8, any Unicode) → a library folder → the real flow's scan,
manifest and transcripts (fake engine) → the site it builds → HTTP 200 for every player's media URL and
every captions track's URL, from `http.server` serving DIR as its root (the README's recipe)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.media.sources import encode_name
from tasks.output.site_pages import page_name
from tests.media_factory import write_audio
from tests.site_http import get, player_urls, serve

pytestmark = pytest.mark.slow

AWKWARD = [b"%", b"%25", b"%41", b"%zz", b" ", b"#", b"?", b"&", b";", b"+", b"'", b'"', b"<", b">", b"\\", b"\t",
           b"\n", b"\r", b"\x01", b"\x7f", b"\xe9", b"\xff", b"\xc3", b"\xed\xa0\x80", b"..", b"~", b"=", b":"]
_piece = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=3)
    .map(lambda text: text.encode("utf-8")),
    st.binary(min_size=1, max_size=2).filter(lambda raw: b"/" not in raw and b"\x00" not in raw),
)
_stem = st.lists(_piece, min_size=1, max_size=4).map(b"".join)
# A file at the top or one folder down (the folder's name is as hostile); names as the file system sees them.
_name = st.tuples(st.one_of(st.just(b""), _stem.map(lambda folder: folder + b" dir/")), _stem,
                  st.sampled_from([b".wav", b".WAV", b".mp3", b".mp4"])).map(b"".join)
_names = st.lists(_name, min_size=1, max_size=5, unique_by=lambda raw: raw.lower())


@settings(max_examples=4, deadline=None)
@given(names=_names)
@example(names=[b"100%.wav", b"caf\xe9 \xff.wav", b"new\nline #1?.wav", b"a%41b dir/%zz\x01.wav"])
def test_every_generated_name_gets_a_player_and_captions_that_answer_200(prefect_api: str, names: list[bytes]) -> None:
    from flows.transcribe_library import transcribe_library

    with tempfile.TemporaryDirectory(prefix="site-names-") as top:
        library, out = Path(top) / "library", Path(top) / "out"
        made = _write(library, names, Path(top))
        transcribe_library(source=str(library), out=str(out), engine="fake", canary="off", vad=False, site=True)
        with serve(out) as base:
            for name, data in made.items():
                page = page_name(encode_name(os.fsdecode(name)))
                media, track = player_urls(out / "site" / "files" / page, f"{base}/site/files/{page}")
                assert media is not None and track is not None, name
                assert get(media) == (200, data), (name, media)
                status, captions = get(track)
                assert status == 200 and captions.startswith(b"WEBVTT") and b"clip of" in captions, (name, track)


def _write(library: Path, names: list[bytes], scratch: Path) -> dict[bytes, bytes]:
    """A distinct half-second tone per name (PyAV writes a plain name; it is then renamed to the raw one)."""
    made = {}
    root = os.fsencode(library)
    for n, name in enumerate(names):
        raw = root + b"/" + name
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        plain = scratch / f"tone-{n}.wav"
        write_audio(plain, (0.3 * np.sin(np.arange(8000) * (0.05 + 0.01 * n))).astype(np.float32), 16_000)
        os.rename(plain, raw)
        with open(raw, "rb") as handle:
            made[name] = handle.read()
    return made
