"""MediaLeg without SIP: prompts encoded once per file version, recordings streamed to disk."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from sipline.media.ports import PortAllocator
from sipline.media.tone import dominant_frequency, sine
from sipline.media.wav import read_wav, write_wav
from sipline.roles.ua import media as ua_media
from sipline.roles.ua.media import MediaLeg, local_session
from sipline.sip.sdp import build_answer, build_offer, negotiate

CODECS = ("PCMU", "PCMA")


def _allocator() -> PortAllocator:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = min(port & ~1, 65535 - 32)
    return PortAllocator(first, first + 31)


async def _pair(allocator: PortAllocator) -> tuple[MediaLeg, MediaLeg]:
    a, b = MediaLeg(allocator, "127.0.0.1", CODECS), MediaLeg(allocator, "127.0.0.1", CODECS)
    await a.open()
    await b.open()
    offer = build_offer(local_session("127.0.0.1", a.port, CODECS, "1", 1))
    answer = build_answer(offer, local_session("127.0.0.1", b.port, CODECS, "2", 1))
    await a.apply(negotiate(offer, answer, we_offered=True)[0])
    await b.apply(negotiate(offer, answer, we_offered=False)[0])
    return a, b


@pytest.mark.timeout(20)
async def test_prompt_is_encoded_once_per_file_version_and_recording_streams(tmp_path: Path) -> None:
    prompt, recording = tmp_path / "prompt.wav", tmp_path / "far.wav"
    write_wav(prompt, sine(600, 0.3))
    a, b = await _pair(_allocator())
    b.record(recording)
    b.record(recording)  # the same file again: nothing changes
    ua_media._prompt_payloads.cache_clear()
    await a.play(prompt)
    await a.play(prompt)
    info = ua_media._prompt_payloads.cache_info()
    assert info.misses == 1 and info.hits >= 1  # one encoding, reused by the replay
    first = ua_media._prompt_payloads(ua_media._prompt_key(prompt), "PCMU", 8000, 160)
    write_wav(prompt, sine(1500, 0.3))  # a new version of the file is read again
    os.utime(prompt, ns=(1, 1))
    await a.play(prompt)
    second = ua_media._prompt_payloads(ua_media._prompt_key(prompt), "PCMU", 8000, 160)
    assert second != first and ua_media._prompt_payloads.cache_info().misses == 2
    await asyncio.sleep(0.15)  # the jitter buffer's delay
    await a.close()
    await b.close()
    heard = read_wav(recording)
    assert heard.size > 6400  # ~0.9 s of audio, written while the call went on
    tones = [dominant_frequency(heard[i:i + 1600]) for i in range(0, heard.size - 1600, 800)]
    assert any(abs(f - 600) < 20 for f in tones) and any(abs(f - 1500) < 20 for f in tones)


@pytest.mark.timeout(20)
async def test_recording_to_a_bad_path_is_logged_and_the_call_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = await _pair(_allocator())
    first = tmp_path / "first.wav"
    b.record(first)
    await a.play(sine(440, 0.2))
    b.record(tmp_path / "missing" / "x.wav")  # closes the first file, cannot open the second
    with caplog.at_level(logging.WARNING, logger="sipline.ua.media"):
        b.record(tmp_path / "missing" / "y.wav")
    assert "cannot write recording" in caplog.text
    await a.play(sine(440, 0.1))
    await a.close()
    await b.close()
    assert read_wav(first).size > 0 and np.abs(read_wav(first)).max() > 1000
