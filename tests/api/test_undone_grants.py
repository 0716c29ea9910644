"""No answer rests on a grant whose commit may still fail (the embedded deployment).

A grab takes its unit in memory and is answered once the journal committed it; a grant
whose commit fails is undone. Until then it is pending, and nothing may be answered from
it: a grab of the same customer and coupon is not `already-held`, a coupon emptied by
pending grants is not `sold-out` (each waits for the outcome, or gets 503), and a failed
statement stops its whole batch, so that nothing of a batch answered 503 is written.

The tests make commits fail for real and hold the database's write lock (as an operator's
`sqlite3` shell may) to keep grants pending while other grabs arrive:
- disk full: the data dir is a 2 MiB tmpfs, filled up (needs root to mount; skipped
  otherwise);
- a trigger that rolls back the transaction when one customer's grant is inserted (what
  SQLite may do on an I/O error or a full disk in the middle of a batch), with grants of
  other customers queued after it in the same batch.
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


class WriteLock:
    """The database's write lock, held by this process: the journal's next transaction
    waits for it (for up to its busy timeout, 5 s)."""

    def __init__(self, db_path):
        self.conn = sqlite3.connect(str(db_path), isolation_level=None, timeout=5)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self):
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


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


def check_answers(srv, client, tokens, amounts, answers, restart=False):
    """Every answer agrees with what is held now: in the lists, in SQL (and after a
    restart)."""
    held = held_pairs(client, tokens)
    grants = {(customer, coupon) for customer, _seller, coupon in srv.grants()}
    assert grants == held, "SQL holds other grants than the lists show"
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
    # `remaining` is amount minus grants in SQL itself, before a restart would repair it.
    for row in srv.query("select name, amount, remaining from coupons"):
        taken = sum(1 for pair in grants if pair[1] == row["name"])
        assert row["remaining"] == row["amount"] - taken, row
    if not restart:
        return
    assert srv.stop() == 0
    srv.start()
    assert held_pairs(client, tokens) == held, "a restart changed the holdings"


def run_sale(srv, arm_failure, disarm_failure):
    """The scenario of both tests: grants kept pending behind the write lock, the commit of
    one of them failing, grabs arriving meanwhile that its outcome decides."""
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    roles = {"last": 1, "many": 10, "early": 10}
    names = {role: client.new_coupon(stoken, seller, amount=n) for role, n in roles.items()}
    amounts = {names[role]: n for role, n in roles.items()}
    tokens, people = {}, {}
    for role in ("victim", "o1", "o2", "o3", "x"):
        people[role], tokens[people[role]] = client.new_user("customer")

    def grab(pool, role, coupon_role):
        customer, coupon = people[role], names[coupon_role]
        future = pool.submit(lambda: Client(srv, requests.Session()).grab(tokens[customer],
                                                                          seller, coupon))
        return customer, coupon, future

    def backlog():
        return metric(srv, "seckill_journal_backlog")

    failures_before = metric(srv, "seckill_journal_failures_total")
    arm_failure(people["victim"])
    started = []
    with ThreadPoolExecutor(8) as pool:
        lock = WriteLock(srv.db_path)
        try:
            # x's grant: the batch the journal holds while it waits for the lock.
            started.append(grab(pool, "x", "early"))
            wait_for(lambda: backlog() >= 1, "x's grant in the journal")
            # The victim's grants (of the last unit of one coupon, and of another), then
            # two more queued after them: one batch, whose commit fails.
            started.append(grab(pool, "victim", "last"))
            wait_for(lambda: backlog() >= 2, "the victim's first grant in the journal")
            started.append(grab(pool, "victim", "many"))
            started.append(grab(pool, "o2", "many"))
            started.append(grab(pool, "o3", "many"))
            wait_for(lambda: backlog() >= 5, "the batch that fails, in the journal")
            # Decided by the victim's pending grants: its own grabs again (already-held?),
            # and another customer's grab of the coupon that a grant emptied (sold-out?).
            deciders = [grab(pool, "victim", "many"), grab(pool, "victim", "last"),
                        grab(pool, "o1", "last")]
            started += deciders
            wait_for(lambda: sum(f.done() for _, _, f in deciders) +
                     (metric(srv, "seckill_grabs_waiting") or 0) >= len(deciders),
                     "the grabs that pending grants decide: answered, or waiting")
        finally:
            lock.release()
        answers = [(customer, coupon, future.result()) for customer, coupon, future in started]

    assert metric(srv, "seckill_journal_failures_total") > failures_before, \
        "no commit failed: the test did not test anything"
    victim_first = answers[1][2]
    assert victim_first.status_code == 503, describe(victim_first)
    assert (metric(srv, "seckill_grabs_waiting") or 0) == 0
    check_answers(srv, client, tokens, amounts, answers)

    # Once commits work again, every customer told 503 tries again: no grant undone in
    # memory may linger in SQL (it would refuse the new one).
    disarm_failure()
    for customer, coupon, r in list(answers):
        if r.status_code == 503:
            answers.append((customer, coupon, client.grab(tokens[customer], seller, coupon)))
    check_answers(srv, client, tokens, amounts, answers, restart=True)


def test_disk_full(start_server, tiny_tmpfs):
    """The case of issue 13, on a full 2 MiB tmpfs: every commit fails."""
    srv = start_server(data_dir=tiny_tmpfs / "data")
    filler = []
    try:
        run_sale(srv, lambda _victim: filler.append(fill_up(tiny_tmpfs)),
                 lambda: filler.pop().unlink())
    finally:
        srv.stop()


def test_rolled_back_mid_batch(start_server):
    """One customer's grant makes SQLite roll back the whole transaction; the grants
    queued after it in that batch must not commit on their own."""
    srv = start_server()

    def arm(victim):
        conn = sqlite3.connect(str(srv.db_path), timeout=5)
        quoted = victim.replace("'", "''")
        conn.execute(f"CREATE TRIGGER fail_victim BEFORE INSERT ON grants "
                     f"WHEN NEW.customer = '{quoted}' "
                     f"BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END")
        conn.close()

    def disarm():
        conn = sqlite3.connect(str(srv.db_path), timeout=5)
        conn.execute("DROP TRIGGER fail_victim")
        conn.close()

    run_sale(srv, arm, disarm)
