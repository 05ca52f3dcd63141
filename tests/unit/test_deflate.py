"""The gzip member assembled from pieces compressed at different times."""

from __future__ import annotations

import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.render import deflate
from tests.support.metrics import one_member

parts = st.lists(
    st.tuples(st.booleans(), st.binary(max_size=3000) | st.text(max_size=500).map(str.encode)),
    max_size=12,
)


@given(parts)
def test_pieces_and_bytes_make_one_valid_member(chosen):
    items = [deflate.compress(text) if cached else text for cached, text in chosen]
    expected = b"".join(text for _, text in chosen)
    body = deflate.gzip_member(items)
    assert one_member(body) == expected
    assert gzip.decompress(body) == expected
    assert deflate.text_of(items) == expected


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_shift_and_multiply_combine_crcs_as_zlib_computes_them(a, b):
    assert deflate.multiply(deflate.shift(len(b)), zlib.crc32(a)) ^ zlib.crc32(b) == zlib.crc32(
        a + b
    )


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_the_fallback_combines_crcs_as_crc32_of_the_concatenation(a, b):
    combined = deflate.combine_fallback(zlib.crc32(a), zlib.crc32(b), len(b))
    assert combined == zlib.crc32(a + b)


@pytest.mark.skipif(not hasattr(zlib, "crc32_combine"), reason="zlib.crc32_combine: 3.15+")
@given(st.binary(max_size=2000), st.binary(max_size=2000), st.integers(0, 2**40))
def test_zlib_crc32_combine_and_the_fallback_agree(a, b, length):
    crc_a, crc_b = zlib.crc32(a), zlib.crc32(b)
    assert zlib.crc32_combine(crc_a, crc_b, len(b)) == zlib.crc32(a + b)
    assert zlib.crc32_combine(crc_a, crc_b, length) == deflate.combine_fallback(
        crc_a, crc_b, length
    )


NATIVE_PATH = """
import gzip, sys, zlib
zlib.crc32_combine = None  # present at import: the module takes the native path
from exporter.render import deflate
zlib.crc32_combine = deflate.combine_fallback  # zlib's, as 3.15 has it
assert deflate.NATIVE
texts = [b"head\\n", bytes(range(256)) * 300, b"", b"x" * 70000, b"tail\\n"]
pieces = [deflate.compress(t) for t in texts[1:4]]
assert all(p.shift == 0 for p in pieces)
body = deflate.gzip_member([texts[0], deflate.concat(pieces), texts[4]])
assert gzip.decompress(body) == b"".join(texts), "gzip"
print("ok")
"""


def test_the_native_path_makes_the_same_members():
    """Where zlib has crc32_combine (3.15+), pieces carry no shift and zlib combines."""
    done = subprocess.run(
        [sys.executable, "-c", NATIVE_PATH],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.stdout == "ok\n", done.stderr


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_multiply_is_a_commutative_product_that_one_leaves_alone(a, b, c):
    multiply = deflate.multiply
    assert multiply(a, b) == multiply(b, a)
    assert multiply(a, deflate.ONE) == a
    assert multiply(a, b ^ c) == multiply(a, b) ^ multiply(a, c)
    assert multiply(multiply(a, b), c) == multiply(a, multiply(b, c))


def test_large_pieces_and_their_concatenation():
    big = bytes(range(256)) * 1000  # 256 kB
    pieces = [deflate.compress(big), deflate.compress(b"x" * 70_000), deflate.compress(b"")]
    joined = deflate.concat(pieces)
    text = big + b"x" * 70_000
    assert (joined.size, joined.crc) == (len(text), zlib.crc32(text))
    if not deflate.NATIVE:
        assert joined.shift == deflate.shift(len(text))
    items = [b"head\n", *pieces, b"tail\n"]
    assert one_member(deflate.gzip_member(items)) == b"head\n" + text + b"tail\n"
    assert one_member(deflate.gzip_member([b"head\n", joined])) == b"head\n" + text


def test_a_piece_is_reused_unchanged_by_later_members():
    piece = deflate.compress(b"ocs_agent_up 1.0\n")
    first = deflate.gzip_member([b"a\n", piece])
    second = deflate.gzip_member([b"bb\n", piece, b"c\n"])
    assert one_member(first) == b"a\nocs_agent_up 1.0\n"
    assert one_member(second) == b"bb\nocs_agent_up 1.0\nc\n"


def test_system_gzip_reads_it(tmp_path):
    items = [b"# HELP x y\n", deflate.compress(b"x 1.0\n" * 1000), b"z 2.0\n"]
    path = tmp_path / "metrics.gz"
    path.write_bytes(deflate.gzip_member(items))
    out = subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True)
    assert out.stdout == b"# HELP x y\n" + b"x 1.0\n" * 1000 + b"z 2.0\n"
    test = subprocess.run(["gzip", "-t", str(path)], capture_output=True, check=False)
    assert test.returncode == 0, test.stderr


@given(st.lists(st.binary(max_size=5000), max_size=8), parts)
def test_a_stream_is_a_piece_of_everything_written_to_it(writes, chosen):
    stream = deflate.Stream()
    for text in writes:
        stream.write(text)
    piece = stream.piece()
    written = b"".join(writes)
    assert (piece.size, piece.crc) == (len(written), zlib.crc32(written))
    items = [deflate.compress(text) if cached else text for cached, text in chosen]
    expected = written + b"".join(text for _, text in chosen)
    assert one_member(deflate.gzip_member([piece, *items])) == expected
    assert deflate.text_of([piece, *items]) == expected
