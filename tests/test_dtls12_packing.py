"""pack_datagrams slices records without parsing their fields: the same datagrams as a full parse."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.ua import dtls12_psk as dtls

records = st.builds(
    lambda content_type, epoch, sequence, fragment: dtls._record_header(
        content_type, dtls.DTLS1_2_VERSION, epoch, sequence, len(fragment)
    )
    + fragment,
    st.sampled_from([20, 21, 22, 23]),
    st.integers(0, 2),
    st.integers(0, 2**32),
    st.binary(max_size=400),
)


def pack_by_parsing(stream: bytes, mtu: int, epoch0_offset: int) -> list[bytes]:
    """Pack as the engine did before: parse every record, then rebuild its header."""
    datagrams: list[bytes] = []
    current = b""
    for record in dtls.parse_records(stream):
        sequence = record.sequence + (epoch0_offset if record.epoch == 0 else 0)
        header = dtls._record_header(record.content_type, record.version, record.epoch, sequence, len(record.fragment))
        octets = header + record.fragment
        if current and len(current) + len(octets) > mtu:
            datagrams.append(current)
            current = b""
        current += octets
    if current:
        datagrams.append(current)
    return datagrams


@given(st.lists(records, max_size=8), st.integers(dtls.MIN_MTU, 1500), st.integers(0, 2**16))
def test_pack_matches_full_parse(stream_records, mtu, epoch0_offset):
    stream = b"".join(stream_records)

    assert dtls.pack_datagrams(stream, mtu, epoch0_offset) == pack_by_parsing(stream, mtu, epoch0_offset)


def test_pack_rejects_truncated_record():
    record = dtls.handshake_record(dtls.Record(22, 0xFEFD, 0, 1, b""), 1, 0, b"x" * 20)

    with pytest.raises(dtls.DtlsParseError, match="runs past"):
        dtls.pack_datagrams(record[:-1], 256)
    with pytest.raises(dtls.DtlsParseError, match="truncated record header"):
        dtls.pack_datagrams(record + record[:5], 256)
