"""A torn grant log (issue 13): kill -9 under grab load, then the end of a worker's log made
to look as a crash in the middle of its write(2) leaves it; restart, and check
test_crash.check_after_restart's invariants: nothing answered lost, nothing invented.

The embedded deployment answers a grab only after the write holding its record returned
(README "Durability"), so the record a crash cuts off was never answered: recovery must
drop it, and keep everything before it. The test writes two records of its own at the end
of the last segment of one worker's log, in the format of src/store/local/grant_log.c:

- a whole one, granting a coupon nobody grabbed to a customer who never asked: the control.
  It stands for an answered grant whose record SQLite had not got yet at the crash, and it
  must be there after the restart (so the records this test makes are ones the service
  reads, and a missing torn record below means it was dropped, not misread);
- then a grant to another customer, cut off: in its payload, in its 16-byte header, or
  whole but with a byte changed after the checksum was made. It must not be there.

The segment's own records before them are left as they are; a partial record the kill
itself left at the end (the kill fell inside a write) is cut off first, which is what
recovery does to it anyway. After the restart no segment of the old logs is left.

Also: test_crash's kill -9 check with --sync-commits 1 (fdatasync per worker turn).
"""

import random
import struct
import zlib

import pytest

import test_crash as crash
from seckill_harness import Client, describe, make_users

pytestmark = pytest.mark.embedded_only  # the grant logs are the embedded store's

KIND_GRANT = 3
HEADER = 16  # u32 checksum, u32 payload length, u64 sequence


def encode_string(text):
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw + b"\0"


def grant_record(sequence, grant_id, coupon_id, customer, seller, coupon, granted_at):
    payload = (struct.pack("<Bqqq", KIND_GRANT, grant_id, coupon_id, granted_at)
               + encode_string(customer) + encode_string(seller) + encode_string(coupon))
    rest = struct.pack("<IQ", len(payload), sequence) + payload
    return struct.pack("<I", zlib.crc32(rest)) + rest


def valid_prefix(data, first_sequence):
    """(bytes of whole valid records from the start, the sequence after the last)."""
    offset, sequence = 0, first_sequence
    while len(data) - offset >= HEADER:
        checksum, length, record_sequence = struct.unpack_from("<IIQ", data, offset)
        end = offset + HEADER + length
        if length > 1 << 20 or end > len(data):
            break
        if zlib.crc32(data[offset + 4:end]) != checksum or record_sequence != sequence:
            break
        offset, sequence = end, sequence + 1
    return offset, sequence


def segments(log_dir):
    """{writer: [(first sequence, path), ...] in order} of the segment files there."""
    out = {}
    for path in sorted(log_dir.glob("*.log")):
        writer, first = path.stem.split("-")
        out.setdefault(int(writer), []).append((int(first), path))
    return out


@pytest.mark.parametrize("cut", ["payload", "header", "checksum"])
def test_torn_log_tail(start_server, tmp_path, cut):
    seed = random.randrange(1 << 30)
    print(f"\nseed {seed} cut {cut}")
    rng = random.Random(seed)
    srv = start_server(data_dir=tmp_path / "data")
    sellers, customers, amounts = crash.populate(srv, rng, f"torn{cut}")
    seller = sorted(sellers)[0]
    target = (seller, "torn_target")
    r = Client(srv).create_coupon(sellers[seller], seller, target[1], amount=10, stock=1,
                                  description="only the test grants it")
    assert r.status_code == 201, describe(r)
    extra = make_users(srv, ["torn_kept", "torn_cut"], "customer")
    coupon_id = srv.query("select id from coupons where seller = ? and name = ?", target)[0]["id"]
    before = crash.snapshot(srv)

    outcomes = crash.run_load(srv, customers, amounts, rng, rng.uniform(0.3, 1.0), srv.kill)
    assert srv.proc.returncode == -9

    log_dir = srv.data_dir / "seckill.db-log"
    writers = segments(log_dir)
    assert writers, f"no grant log segment left after kill -9 in {log_dir}"
    writer = rng.choice(sorted(writers))
    first, path = writers[writer][-1]
    data = path.read_bytes()
    valid, sequence = valid_prefix(data, first)
    print(f"writer {writer}: {path.name}, {valid} valid bytes of {len(data)}, next {sequence}")

    kept = grant_record(sequence, 10**12, coupon_id, "torn_kept", *target, 1700000000)
    torn = grant_record(sequence + 1, 10**12 + 1, coupon_id, "torn_cut", *target, 1700000000)
    if cut == "payload":
        torn = torn[:HEADER + (len(torn) - HEADER) // 2]
    elif cut == "header":
        torn = torn[:HEADER // 2]
    else:
        # The checksum was made for "torn_cut"; the name on disk is "torn_cux".
        at = torn.index(b"torn_cut") + 7
        torn = torn[:at] + b"x" + torn[at + 1:]
    path.write_bytes(data[:valid] + kept + torn)

    srv.start()
    assert not list(log_dir.glob("*.log")), "recovery left segments of the old logs behind"
    assert "dropped" in srv.logs(), srv.logs()[-3000:]

    everyone = {**customers, **extra}
    amounts = {**amounts, target: 10}
    # The control counts as answered; the cut one as never sent: if it were granted, it
    # would be a grant nobody got a 201 for.
    outcomes = {**outcomes, ("torn_kept", *target): "201"}
    holders = crash.check_after_restart(srv, sellers, everyone, amounts, outcomes, before)
    assert holders[target] == {"torn_kept"}, holders[target]
    crash.finish_sale(srv, everyone, amounts, holders)
    assert srv.stop() == 0, srv.logs()[-3000:]


def test_kill9_with_sync_commits(start_server, tmp_path):
    """test_crash's kill -9 check with --sync-commits 1, where each worker turn's write is
    followed by fdatasync before its answers and each new segment's name is synced into
    the directory: a kill -9 cannot tell it from 0, but every answer still waits for a
    write that recovery then finds."""
    seed = random.randrange(1 << 30)
    print(f"\nseed {seed}")
    rng = random.Random(seed)
    srv = start_server(data_dir=tmp_path / "data", options={"--sync-commits": "1"})
    sellers, customers, amounts = crash.populate(srv, rng, "sync")
    before = crash.snapshot(srv)
    outcomes = crash.run_load(srv, customers, amounts, rng, rng.uniform(0.3, 1.0), srv.kill)
    assert srv.proc.returncode == -9
    srv.start()
    holders = crash.check_after_restart(srv, sellers, customers, amounts, outcomes, before)
    crash.finish_sale(srv, customers, amounts, holders)
    assert srv.stop() == 0, srv.logs()[-3000:]
