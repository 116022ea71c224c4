"""The opaque position of a text file: the cookie `tell()` returns and `seek()` takes.

Theory of operation:
- A cookie names a point where the decoder's buffer was empty (a byte position and the
  decoder's flags there), and how to get from it to the position: bytes to feed the decoder,
  characters to skip, and whether the decoder must be told the input ended. `seek()` goes to
  the point and replays; `compute_cookie` finds the point from the snapshot a chunk read
  left (CPython's `_io_TextIOWrapper_tell_impl`: a fast search by the bytes-per-character
  ratio, then one byte at a time).
- Cookies are packed as CPython packs them (start position, decoder flags, bytes to feed,
  characters to skip, need-EOF flag in 8+4+4+4+1 little-endian bytes), so a cookie from one
  side seeks correctly on the other.
- `compute_cookie` replays the decoder on the snapshot and puts its state back after, even
  when it raises: the text state is what it was.
"""

from __future__ import annotations

from core.files.text_state import TextState

__all__ = ["compute_cookie", "pack_cookie", "unpack_cookie"]


def pack_cookie(
    start_pos: int,
    dec_flags: int = 0,
    bytes_to_feed: int = 0,
    chars_to_skip: int = 0,
    need_eof: bool = False,
) -> int:
    """A cookie from its fields."""
    # CPython's layout: off_t start, then three C ints and a char, little-endian, unsigned.
    return (
        (start_pos & (2**64 - 1))
        | ((dec_flags & 0xFFFFFFFF) << 64)
        | ((bytes_to_feed & 0xFFFFFFFF) << 96)
        | ((chars_to_skip & 0xFFFFFFFF) << 128)
        | (int(need_eof) << 160)
    )


def unpack_cookie(cookie: int) -> tuple[int, int, int, int, bool]:
    """A cookie's fields: (start position, decoder flags, bytes to feed, characters to skip,
    need EOF). Raises `OverflowError` for a cookie CPython refuses too."""
    raw = cookie.to_bytes(21, "little")  # OverflowError for what CPython refuses too
    start_pos = int.from_bytes(raw[0:8], "little", signed=True)
    dec_flags = int.from_bytes(raw[8:12], "little", signed=True)
    bytes_to_feed = int.from_bytes(raw[12:16], "little", signed=True)
    chars_to_skip = int.from_bytes(raw[16:20], "little", signed=True)
    return start_pos, dec_flags, bytes_to_feed, chars_to_skip, raw[20] != 0


def compute_cookie(t: TextState) -> int:
    """The cookie of `t`'s position, once its pending text is flushed. Raises `OSError` if
    the position cannot be reconstructed."""
    position = t.buffer.tell()
    decoder = t._decoder
    snapshot = t._snapshot
    if decoder is None or snapshot is None:
        return position
    dec_flags, next_input = snapshot
    start_pos = position - len(next_input)
    if t._decoded_chars_used == 0:
        return pack_cookie(start_pos, dec_flags)
    chars_to_skip = t._decoded_chars_used
    saved_state = decoder.getstate()
    try:
        # Fast search for a start point close to the position: one decode for fixed-width
        # codecs, a few for others.
        skip_bytes = int(t._b2cratio * chars_to_skip)
        skip_back = 1
        while skip_bytes > 0:
            t._decoder_setstate(start_pos, dec_flags)
            chars_decoded = len(decoder.decode(next_input[:skip_bytes]))
            if chars_decoded <= chars_to_skip:
                dec_buffer, flags = decoder.getstate()
                if not dec_buffer:
                    dec_flags = flags
                    chars_to_skip -= chars_decoded
                    break
                skip_bytes -= len(dec_buffer)
                skip_back = 1
            else:
                skip_bytes -= skip_back
                skip_back *= 2
        if skip_bytes <= 0:
            skip_bytes = 0
            t._decoder_setstate(start_pos, dec_flags)
        start_pos += skip_bytes
        if chars_to_skip == 0:
            return pack_cookie(start_pos, dec_flags)
        # Feed one byte at a time, noting the last safe start point (decoder buffer empty).
        bytes_to_feed = 0
        need_eof = False
        chars_decoded = 0
        i = skip_bytes
        end = len(next_input)
        while i < end:
            chars_decoded += len(decoder.decode(next_input[i : i + 1]))
            bytes_to_feed += 1
            dec_buffer, flags = decoder.getstate()
            if not dec_buffer and chars_decoded <= chars_to_skip:
                start_pos += bytes_to_feed
                chars_to_skip -= chars_decoded
                dec_flags = flags
                bytes_to_feed = 0
                chars_decoded = 0
            if chars_decoded >= chars_to_skip:
                break
            i += 1
        if i == end:
            chars_decoded += len(decoder.decode(b"", True))
            need_eof = True
            if chars_decoded < chars_to_skip:
                raise OSError("can't reconstruct logical file position")
        return pack_cookie(start_pos, dec_flags, bytes_to_feed, chars_to_skip, need_eof)
    finally:
        decoder.setstate(saved_state)
