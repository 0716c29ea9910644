"""Crash matrix: test_crash.py's kill -9 check, repeated over random load shapes and random
moments, each round crashing the same data directory twice.

A round (seed printed; SECKILL_CRASH_SEED=N replays every round from N):

1. a random shape: client threads, sellers, coupons per seller, customers; amounts random
   per coupon: 5 to 80 as test_crash.populate makes them, plus per seller a hot coupon
   (1 to 3) and one that sells through most of the phase;
2. grab load, kill -9 at a random moment (0.1 to 1.5 s in), restart on the same data
   directory, check API.md's invariants (test_crash.check_after_restart: no acknowledged
   grant lost, no grant nobody was answered or left in flight for, no duplicate, no oversell,
   left = remaining = amount - holders, every customer's list equal to the grants table);
3. new customers and new coupons, grab load again on the recovered state, and a second
   stop: kill -9 again, or, in every fifth round (round 2, 7, 12, ... so that the default
   run has one), SIGTERM while the clients go on for 0.3 s, which must exit 0 and lose
   nothing in flight: every grab written before the signal (DrainClients) is answered, and
   every grant made while draining was answered (no failed request is in the grants table);
4. restart, the same checks over both phases, then the sale finished: every coupon sells
   out exactly (test_crash.finish_sale), and SIGTERM exits 0.

Against the distributed deployment (SECKILL_DEPLOYMENT=distributed) a second instance on
the same Redis and MariaDB takes half of every load and lives through the first one's
crashes: the invariants hold for the deployment, whichever instance answered.

SECKILL_CRASH_ROUNDS sets the number of rounds (default 3, for make test; make stress runs
25: 20 rounds of two kill -9 and 5 of kill -9 then SIGTERM).
"""

import os
import random

import pytest

import test_crash as crash
from seckill_harness import (DISTRIBUTED, Client, Fleet, SocketReader, connect, describe,
                             http_request, make_users, seg)

ROUNDS = int(os.environ.get("SECKILL_CRASH_ROUNDS", "3"))
SEED = os.environ.get("SECKILL_CRASH_SEED")


# Pairs (customer, coupon) per phase, at least: the Python clients grab 1,200 to 1,800 pairs
# a second here, so the load outlasts the latest stop (1.5 s) by far and every stop lands
# in the middle of it.
MIN_PAIRS = 4000


def load_shape(rng, monkeypatch):
    """Sets test_crash's shape for this test (monkeypatch restores it) and returns it."""
    sellers, coupons_per_seller = rng.randint(3, 4), rng.randint(2, 5)
    coupons = sellers * (coupons_per_seller + EXTRA_PER_SELLER)
    shape = {
        "THREADS": rng.choice([8, 16, 32, 64, 96]),
        "N_SELLERS": sellers,
        "COUPONS_PER_SELLER": coupons_per_seller,
        "N_CUSTOMERS": max(rng.randint(100, 300), -(-MIN_PAIRS // coupons)),
    }
    for name, value in shape.items():
        monkeypatch.setattr(crash, name, value)
    return shape


# populate() makes coupons of 5 to 80, sold out early in a phase: each seller also gets a
# hot one (1 to 3: contention) and one that sells through most of a phase.
EXTRA_PER_SELLER = 2


def add_coupons(srv, sellers, amounts, rng, tag, amount_ranges):
    """Creates a coupon per seller for each (low, high) range; adds them to `amounts`."""
    client = Client(srv)
    for seller, token in sellers.items():
        for i, (low, high) in enumerate(amount_ranges):
            name = f"{seller}_{tag}{i}"
            amount = rng.randint(low, high)
            r = client.create_coupon(token, seller, name, amount=amount, stock=i,
                                     description=tag)
            assert r.status_code == 201, describe(r)
            amounts[(seller, name)] = amount


DRAINERS = 40


class DrainClients:
    """Customers on open keep-alive connections, each with one grab written just before the
    SIGTERM: the server must answer every one of them (API.md: finish requests in flight).
    Raw sockets, written from one thread, so that "written before the signal" is a fact, not
    a guess about when a client thread got to run."""

    def __init__(self, srv, drainers, coupons, rng):
        self.pairs, self.conns, self.requests = [], [], []
        for customer, token in drainers.items():
            seller, coupon = rng.choice(coupons)
            sock = connect(srv)
            reader = SocketReader(sock)
            sock.sendall(http_request("GET", "/healthz"))
            assert reader.read_response().status == 200
            self.pairs.append((customer, seller, coupon))
            self.conns.append((sock, reader))
            self.requests.append(http_request(
                "PATCH", f"/api/users/{seg(seller)}/coupons/{seg(coupon)}",
                headers={"Authorization": token}))

    def send(self):
        for (sock, _), request in zip(self.conns, self.requests):
            sock.sendall(request)

    def collect(self):
        """{pair: "201" or "204:<reason>"}; asserts that every grab was answered."""
        outcomes = {}
        for pair, (sock, reader) in zip(self.pairs, self.conns):
            sock.settimeout(5)
            try:
                response = reader.read_response("PATCH")
            except (EOFError, OSError) as exc:
                raise AssertionError(f"grab {pair} sent before SIGTERM got no answer: "
                                     f"{exc!r}") from None
            finally:
                sock.close()
            assert response.status in (201, 204), response
            outcomes[pair] = "201" if response.status == 201 else \
                f"204:{response.header('x-seckill-reason')}"
        return outcomes


def check_stopped_mid_load(outcomes, customers, amounts, moment):
    """The stop came while pairs were still to be tried: otherwise it hit an idle server."""
    total = len(customers) * len(amounts)
    print(f"stop at {moment:.2f} s: {len(outcomes)} of {total} pairs tried")
    assert len(outcomes) < total, f"the load ended before the stop at {moment:.2f} s: " \
                                  "raise MIN_PAIRS"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_crash_round(start_server, tmp_path, monkeypatch, round_):
    seed = int(SEED) + round_ if SEED is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    shape = load_shape(rng, monkeypatch)
    sigterm = round_ % 5 == 2
    print(f"\nround {round_} seed {seed} shape {shape} second stop "
          f"{'SIGTERM' if sigterm else 'kill -9'}")
    srv = start_server(data_dir=tmp_path / "data")
    target = srv
    if DISTRIBUTED:
        target = Fleet([srv, start_server(data_dir=tmp_path / "data")])

    # Phase 1: kill -9 under load.
    sellers, customers, amounts = crash.populate(srv, rng, f"x{round_}")
    n = crash.N_CUSTOMERS
    add_coupons(srv, sellers, amounts, rng, "e", [(1, 3), (n // 2, n)])
    before = crash.snapshot(srv)
    moment = rng.uniform(0.1, 1.5)
    outcomes = crash.run_load(target, customers, amounts, rng, moment, srv.kill)
    assert srv.proc.returncode == -9
    check_stopped_mid_load(outcomes, customers, amounts, moment)
    srv.start()
    crash.check_after_restart(srv, sellers, customers, amounts, outcomes, before)

    # Phase 2: fresh customers on the recovered state, then kill -9 or SIGTERM.
    fresh = make_users(srv, [f"y{round_}_{i}" for i in range(n)], "customer")
    add_coupons(srv, sellers, amounts, rng, "f", [(n // 2, 2 * n)])
    before = crash.snapshot(srv)
    moment = rng.uniform(0.1, 1.5)
    if sigterm:
        drainers = make_users(srv, [f"z{round_}_{i}" for i in range(DRAINERS)], "customer")
        before = crash.snapshot(srv)
        drain = DrainClients(srv, drainers, list(amounts), rng)
        codes = []

        def stop():
            drain.send()
            codes.append(srv.stop())

        more = crash.run_load(target, fresh, amounts, rng, moment, stop, keep_going=0.3)
        assert codes == [0], f"exit status {codes} after SIGTERM\n{srv.logs()[-3000:]}"
        check_stopped_mid_load(more, fresh, amounts, moment)
        more.update(drain.collect())
        fresh.update(drainers)
    else:
        more = crash.run_load(target, fresh, amounts, rng, moment, srv.kill)
        assert srv.proc.returncode == -9
        check_stopped_mid_load(more, fresh, amounts, moment)
    srv.start()
    everyone = {**customers, **fresh}
    holders = crash.check_after_restart(srv, sellers, everyone, amounts,
                                        {**outcomes, **more}, before)
    if sigterm:
        # Every grant the draining server made was answered: none of the requests the
        # clients saw fail (sent during the drain, refused or cut) was granted.
        unanswered = {p for p, o in more.items() if o == "inflight"} & set(srv.grants())
        assert not unanswered, f"{len(unanswered)} grants made on SIGTERM never answered, " \
                               f"e.g. {sorted(unanswered)[:5]}"
    crash.finish_sale(srv, everyone, amounts, holders)
    assert srv.stop() == 0, srv.logs()[-3000:]
