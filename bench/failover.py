#!/usr/bin/python3
"""Issue 15's measurement: how many 201s a Redis failover loses, under wrk's grab load.

    bench/failover.py [--wait-replicas N] [--follow restart|sentinel] [--runs K]

Each run starts a MariaDB and a Redis master + replica + Sentinel (tests/backends), one
seckill (--threads 2) and bench/setup.py's sale, then wrk (bench/grab.lua: every request
a new pair) for --duration seconds. After --warmup seconds the replica is cut off from
its master for --window seconds (a wrong masterauth and its link dropped: it cannot catch
up), the master is killed with kill -9, the replica's password restored, and Sentinel
promotes the replica. `--follow restart` (the default, which needs nothing new in the
service): seckill runs on the master's plain redis:// URL and is restarted by hand on the
new master's; `--follow sentinel`: seckill runs on the redis-sentinel:// URL and must
follow by itself. The old master comes back as a replica of the new one either way.

Counted: the 201s (seckill_grabs_total{outcome="granted"} of the seckill processes), the
grants Redis still holds (the customers' sorted sets on the new master) and the grants
rows in SQL. "lost" = 201s - held: exact with N=0; with N>=1 a 503 whose grant stood
counts as held, so it is a lower bound. Exit status 1 when N>=1 and a run lost 201s.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import requests

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests", "backends"))
import backends  # noqa: E402

SECRET = "failover-bench-secret-0123456789-abcdefgh"


class Seckill:
    """One seckill process on a fixed port (a restart keeps it, so wrk reconnects)."""

    def __init__(self, binary, work, mysql_url, wait_replicas):
        self.binary, self.work, self.mysql_url = binary, work, mysql_url
        self.wait_replicas = wait_replicas
        self.port = backends.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.process = None
        self.runs = 0

    def start(self, redis_url):
        self.runs += 1
        argv = [self.binary, "--listen", "127.0.0.1:%d" % self.port,
                "--data-dir", os.path.join(self.work, "data"), "--jwt-secret", SECRET,
                "--pwhash-cost", "min", "--threads", "2", "--log-level", "warn",
                "--redis", redis_url, "--mysql", self.mysql_url]
        if self.wait_replicas:
            argv += ["--redis-wait-replicas", str(self.wait_replicas)]
        with open(os.path.join(self.work, "seckill-%d.log" % self.runs), "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("seckill exited with status %d at start; see %s"
                                 % (self.process.returncode, log.name))
            try:
                if requests.get(self.url + "readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise SystemExit("seckill did not get ready within 20 s; see %s" % log.name)

    def granted(self):
        text = requests.get(self.url + "metrics", timeout=5).text
        match = re.search(r'^seckill_grabs_total\{outcome="granted"\} (\S+)$', text, re.M)
        return int(float(match.group(1))) if match else 0

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def held_in_redis(master):
    return sum(int(master.command("ZCARD", key))
               for key in master.command("KEYS", "sk:{*}:u:*") or [])


def one_run(args, work):
    mariadb = backends.MariaDB(base_dir=os.path.join(work, "mariadb")).start()
    group = backends.RedisSentinelGroup(base_dir=os.path.join(work, "redis")).start()
    seckill = Seckill(args.binary, work, mariadb.url, args.wait_replicas)
    wrk = None
    try:
        seckill.start(group.url if args.follow == "sentinel" else group.master_url)
        subprocess.run([sys.executable, os.path.join(BENCH, "setup.py"), "--url", seckill.url,
                        "--out", work, "--customers", str(args.customers),
                        "--coupons", str(args.coupons)], check=True, stdout=subprocess.DEVNULL)
        wrk_out = open(os.path.join(work, "wrk.txt"), "w")
        wrk = subprocess.Popen(
            ["wrk", "-t2", "-c%d" % args.connections, "-d%ds" % args.duration,
             "-s", os.path.join(BENCH, "grab.lua"), seckill.url, "--",
             "tokens=" + os.path.join(work, "tokens.txt"),
             "paths=" + os.path.join(work, "coupons.txt"),
             "offset=0", "span=%d" % (args.customers * args.coupons), "threads=2"],
            stdout=wrk_out, stderr=subprocess.STDOUT)
        time.sleep(args.warmup)
        group.cut_replica_off()
        at_cut = seckill.granted()
        time.sleep(args.window)
        at_kill = seckill.granted()
        killed = time.monotonic()
        group.kill_master()
        group.restore_replica()
        group.wait_failover()
        failover = time.monotonic() - killed
        granted = 0
        if args.follow == "restart":
            granted += seckill.granted()  # the master is dead: no more 201s from this one
            status = seckill.stop()
            if status != 0:
                print("seckill exited %s on SIGTERM" % status, file=sys.stderr)
            seckill.start(group.master_url)
        group.revive_replica()
        wrk.wait(args.duration + 60)
        granted += seckill.granted()
        status = seckill.stop()
        held = held_in_redis(group.master)
        in_sql = int(mariadb.query("select count(*) from grants")[0][0])
        result = {"201s": granted, "before the cut": at_cut, "in the window": at_kill - at_cut,
                  "held in Redis": held, "rows in SQL": in_sql, "lost": max(0, granted - held),
                  "failover s": round(failover, 1), "seckill exit": status}
        wrapped = re.search(r"wrapped=(\d+)", open(wrk_out.name).read())
        if wrapped and int(wrapped.group(1)):
            result["wrk wrapped (pairs repeated; raise --coupons)"] = int(wrapped.group(1))
        return result
    finally:
        if wrk is not None and wrk.poll() is None:
            wrk.kill()
            wrk.wait()
        seckill.stop()
        group.close()
        mariadb.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait-replicas", type=int, default=0, metavar="N",
                        help="seckill's --redis-wait-replicas (default 0: not passed)")
    parser.add_argument("--follow", choices=("restart", "sentinel"), default="restart")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10, help="wrk's seconds (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the cut (3)")
    parser.add_argument("--window", type=float, default=1.0,
                        help="seconds the replica stays cut off (1)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--coupons", type=int, default=300)
    parser.add_argument("--binary", default=os.environ.get("SECKILL_BIN")
                        or os.path.join(ROOT, "build", "seckill"))
    args = parser.parse_args()
    losses = 0
    for run in range(1, args.runs + 1):
        work = tempfile.mkdtemp(prefix="seckill-failover.")
        try:
            result = one_run(args, work)
        except BaseException:
            print("failover: the run's files are kept in %s" % work, file=sys.stderr)
            raise
        shutil.rmtree(work, ignore_errors=True)
        print("run %d (N=%d, follow %s): %s" % (run, args.wait_replicas, args.follow,
                                                json.dumps(result)))
        losses += result["lost"]
    return 1 if args.wait_replicas and losses else 0


if __name__ == "__main__":
    sys.exit(main())
