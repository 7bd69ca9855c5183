"""lampo.crypto.scratch_file: a temporary file that reads and writes like one (seeks, rewrites,
text, a ZIP written into it), while the disk holds only ciphertext under a key the file holds."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from lampo.crypto import scratch_file

SUBJECT = "Meikäläinen Maija, 010190-995A, Kotikatu 1, 40950 Muurame"  # synthetic


def on_disk(f: io.BufferedRandom) -> bytes:
    f.flush()
    fd = f.raw._fd  # the temporary file under the encryption
    return os.pread(fd, os.fstat(fd).st_size, 0)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=40_000)),
        st.tuples(st.just("seek"), st.integers(min_value=0, max_value=120_000)),
        st.tuples(st.just("read"), st.integers(min_value=-1, max_value=50_000)),
        st.tuples(st.just("truncate"), st.integers(min_value=0, max_value=120_000)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_it_reads_back_what_a_plain_file_holds_after_any_writes_seeks_reads_and_truncations(ops) -> None:
    with tempfile.TemporaryFile() as model, scratch_file() as scratch:  # the model: what it stands in for
        for op, arg in ops:
            if op == "write":
                assert scratch.write(arg) == model.write(arg)
            elif op == "seek":
                assert scratch.seek(arg) == model.seek(arg)
            elif op == "truncate":
                assert scratch.truncate(arg) == model.truncate(arg)
            else:
                assert scratch.read(arg) == model.read(arg)
            assert scratch.tell() == model.tell()
        scratch.seek(0)
        model.seek(0)
        assert scratch.read() == model.read()


def test_the_disk_holds_only_ciphertext_of_the_same_length() -> None:
    text = (SUBJECT + "\n").encode() * 2000
    with scratch_file() as one, scratch_file() as two:
        one.write(text)
        two.write(text)
        disk = on_disk(one)
        assert len(disk) == len(text)
        assert SUBJECT.encode() not in disk and b"Muurame" not in disk
        assert disk != on_disk(two)  # each file its own key and counter
        one.seek(0)
        assert one.read() == text


def test_text_mode_keeps_unicode_and_line_ends() -> None:
    with scratch_file(text=True) as f:
        f.write(f"{SUBJECT}\r\n" * 3)
        f.seek(0)
        assert f.read() == f"{SUBJECT}\r\n" * 3


def test_a_zip_written_into_it_goes_back_to_its_headers_and_reads_whole() -> None:
    audio = os.urandom(300_000)
    with scratch_file() as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("data/contact.json", SUBJECT * 100)
            with archive.open("recordings/r1.wav", "w") as member:  # a stream: its header is rewritten
                member.write(audio)
        assert b"Kotikatu" not in on_disk(f)
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            assert archive.testzip() is None
            assert archive.read("recordings/r1.wav") == audio
            assert archive.read("data/contact.json").decode() == SUBJECT * 100
