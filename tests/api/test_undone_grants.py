"""No answer rests on a grant whose record may still fail to be written (embedded).

A grab takes its unit in memory; the grant is pending until its worker's turn wrote the
record to the worker's grant log, and is undone (unit and holder given back, `503`) if that
write failed. A grab that a pending grant decides (the same customer again, or another
customer of a coupon that pending grants emptied) waits for the outcome: never an
`already-held` or `sold-out` that the failure makes false. (A pending grant lasts one loop
turn; the store's unit tests hold one pending for sure: test_store_local,
test_no_answer_from_a_pending_grant.) SQLite is a copy applied behind the logs: a round the
copy refuses is rolled back whole and stays in the logs, and no answer depends on it.

Here writes fail for real:
- disk full: the data dir is a 2 MiB tmpfs, filled up (needs root to mount; skipped
  otherwise), under a burst of grabs that race for the last unit and grab twice at once;
- a trigger that rolls back the copy's transaction when one customer's grant is inserted
  (what SQLite may do on an I/O error in the middle of a round).
Whatever the timing, every answer must agree with what is held at the end, in the lists,
in SQL and after a restart.
"""

import errno
import os
import re
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from seckill_harness import Client, describe, uniq

pytestmark = pytest.mark.embedded_only


def metric(srv, name):
    """The value of an unlabelled sample of /metrics, or None when the series is absent."""
    r = requests.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 200, describe(r)
    m = re.search(rf"^{name} (\S+)$", r.text, re.M)
    return float(m.group(1)) if m else None


def wait_for(condition, what, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MiB tmpfs, unmounted at the end (the test stops its server first)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the disk-full case); the trigger case "
                    "covers the same paths without it")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {out.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)])


def fill_up(directory):
    """Fills the file system of `directory` with one file; returns its path."""
    path = directory / "filler"
    with open(path, "wb", buffering=0) as filler:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    filler.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    assert os.statvfs(directory).f_bavail == 0
    return path


def held_pairs(client, tokens):
    """(customer, coupon) of every holding, as the customers' own lists show them."""
    return {(customer, item["name"]) for customer, token in tokens.items()
            for item in client.list_all(token, customer)}


def check_answers(srv, client, tokens, amounts, answers, sql=True, restart=False):
    """Every answer agrees with what is held now: in the lists, in SQL once the copy caught
    up (and after a restart)."""
    held = held_pairs(client, tokens)
    granted = {(customer, coupon) for customer, coupon, r in answers if r.status_code == 201}
    assert held == granted, "holdings that no 201 answered, or a 201 not held"
    for customer, coupon, r in answers:
        reason = r.headers.get("X-Seckill-Reason")
        if r.status_code == 204 and reason == "already-held":
            assert (customer, coupon) in held, f"already-held, then held nothing{describe(r)}"
        if r.status_code == 204 and reason == "sold-out":
            holders = sum(1 for pair in held if pair[1] == coupon)
            assert holders == amounts[coupon], \
                f"sold-out with {holders} of {amounts[coupon]} held{describe(r)}"
        assert r.status_code in (201, 204, 503), describe(r)
    if not sql:
        return held
    assert srv.settle() == 0, "the SQLite copy did not catch up with the logs"
    grants = {(customer, coupon) for customer, _seller, coupon in srv.grants()}
    assert grants == held, "SQL holds other grants than the lists show"
    # `remaining` is amount minus grants in SQL itself, before a restart would repair it.
    for row in srv.query("select name, amount, remaining from coupons"):
        taken = sum(1 for pair in grants if pair[1] == row["name"])
        assert row["remaining"] == row["amount"] - taken, row
    if restart:
        assert srv.stop() == 0
        srv.start()
        assert held_pairs(client, tokens) == held, "a restart changed the holdings"
    return held


def new_sale(srv, customers):
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    amounts = {client.new_coupon(stoken, seller, amount=n): n for n in (1, 3, 10)}
    tokens = dict(client.new_user("customer") for _ in range(customers))
    return client, seller, amounts, tokens


def burst(srv, seller, tokens, coupons, times=2):
    """Every customer grabs every coupon `times` times at once: they race for the last
    units, and each pair's grabs meet each other's pending grant."""
    jobs = [(customer, coupon) for customer in tokens for coupon in coupons
            for _ in range(times)]
    with ThreadPoolExecutor(16) as pool:
        futures = [(customer, coupon,
                    pool.submit(lambda c=customer, k=coupon:
                                Client(srv, requests.Session()).grab(tokens[c], seller, k)))
                   for customer, coupon in jobs]
        return [(customer, coupon, future.result()) for customer, coupon, future in futures]


def retry_refused(client, seller, tokens, answers):
    """Every customer told 503 tries again once."""
    for customer, coupon, r in list(answers):
        if r.status_code == 503:
            answers.append((customer, coupon, client.grab(tokens[customer], seller, coupon)))


def test_disk_full(start_server, tiny_tmpfs):
    """The case of issue 13, on a full 2 MiB tmpfs: the grant logs' writes fail."""
    srv = start_server(data_dir=tiny_tmpfs / "data")
    try:
        client, seller, amounts, tokens = new_sale(srv, customers=6)
        assert srv.settle() == 0
        filler = fill_up(tiny_tmpfs)
        answers = burst(srv, seller, tokens, amounts)
        refused = [r for _, _, r in answers if r.status_code == 503]
        assert refused, "no write failed: the test did not test anything"
        assert all(r.json()["errMsg"] for r in refused)
        assert (metric(srv, "seckill_grabs_waiting") or 0) == 0
        check_answers(srv, client, tokens, amounts, answers, sql=False)

        # Room again: every customer told 503 tries again, and no grant undone in memory
        # lingers anywhere (the copy would hold it, or a retry would be already-held).
        filler.unlink()
        retry_refused(client, seller, tokens, answers)
        check_answers(srv, client, tokens, amounts, answers, restart=True)
    finally:
        srv.stop()


def test_copy_refusing_a_round(start_server):
    """One customer's grant makes SQLite roll back the copy's transaction: the answers
    were given from the logs and stand; the round is not written in part (the victim's
    grants are not in SQL while the trigger is there), and once the trigger is gone the copy
    catches up with exactly the granted set, also across a restart."""
    srv = start_server()
    client, seller, amounts, tokens = new_sale(srv, customers=4)
    victim = sorted(tokens)[0]
    assert srv.settle() == 0
    failures_before = metric(srv, "seckill_journal_failures_total")
    conn = sqlite3.connect(str(srv.db_path), timeout=5)
    quoted = victim.replace("'", "''")
    conn.execute(f"CREATE TRIGGER fail_victim BEFORE INSERT ON grants "
                 f"WHEN NEW.customer = '{quoted}' "
                 f"BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END")
    conn.close()
    answers = burst(srv, seller, tokens, amounts, times=1)
    assert any(r.status_code == 201 and c == victim for c, _, r in answers)
    held = check_answers(srv, client, tokens, amounts, answers, sql=False)
    wait_for(lambda: metric(srv, "seckill_journal_failures_total") > failures_before,
             "the copy's round to fail", timeout=5)
    assert srv.settle(timeout=0.5) != 0, "the refused round left the backlog"
    # The copy applies in order and stops at the refused round: what SQL holds now is a
    # part of the granted set without the victim's grants (rounds before it, if any).
    conn = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True, timeout=5)
    rows = conn.execute("select customer, coupon from grants").fetchall()
    conn.close()
    assert {(customer, coupon) for customer, coupon in rows} <= held
    assert all(customer != victim for customer, _ in rows), \
        "a round the copy refused was written in part"

    conn = sqlite3.connect(str(srv.db_path), timeout=5)
    conn.execute("DROP TRIGGER fail_victim")
    conn.close()
    assert check_answers(srv, client, tokens, amounts, answers, restart=True) == held
