#!/usr/bin/env python
"""Faults injected into mass upgrades on the real stack (issue 12).

The stack of ``real_stack.py`` (PostgreSQL, Redis, Celery workers and beat,
the ASGI server, emulated routers on distinct loopback addresses), started
once, with the engine's timings shortened. Two mass upgrades of 10 routers
each take the faults that do not interfere with one another:

A. flashes: Redis restarted with the fan-out message queued (lost with it),
   the ASGI server restarted while the routers report, Redis restarted and
   PostgreSQL restarted during the flashes;
B. transfers (capped by ``max_transfer_rate``): a router rebooted during its
   transfer, a worker killed with SIGKILL during transfers, then Celery beat
   stopped for longer than the stuck-operation timeout.

Every fault is judged on the routers it hit: every operation terminal and
truthful (success, and the modem runs the new version), no modem flashed
twice (uxfp runs in the emulator's log), no journal record lost (the
operation's ``device_seq`` equals the records in the router's journal), no
image left on the router; plus what the fault itself must show. One tally
check per fault; a table fault -> outcome at the end.

Run by the test command after real_stack.py; needs scripts/postgres.sh's
cluster (DB=postgres...), which it restarts.
"""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from real_stack import (  # noqa: E402
    REPO,
    Stack,
    check,
    flashes,
    new_router_device,
    record_tally,
    wait_for,
)

FLEET = 10  # routers per mass upgrade
OLD_VERSION = "M0R.010000-B020"
VERSION = "M0R.010100-B024"
IMAGE_SIZE = 4 * 1024 * 1024
# phase B's transfers last ~8 s each: long enough to hit one while the
# router holds 10-60% of the image. The cap is an average since the
# transfer's start (transfer.RateLimiter), the SSH session's setup
# included: on a busy machine a slow setup lets the first second or two of
# data arrive at once, which a shorter transfer could make skip that window.
TRANSFER_RATE = 500_000
# seconds: the flashes of phase A outlast three faults (Redis, PostgreSQL
# and the ASGI server restarted one after the other, each waited on: on a
# saturated machine they took over 14 s together)
FLASH_A = 24
FLASH_B = 4
# the engine at the run's time scale (tests/openwisp2/settings.py)
STUCK_TIMEOUT = 6
REPUBLISH_AFTER = 6
FOLLOW_LEASE = 10
OUTCOMES = []  # (fault, passed, outcome)


def verdict(fault, passed, outcome):
    """One tally check per fault; the run goes on to the next fault."""
    OUTCOMES.append((fault, passed, outcome))
    if passed:
        check(True, f"{fault}: {outcome}")
    else:
        print(f"  FAILED: {fault}: {outcome}")


def print_table():
    if not OUTCOMES:
        return
    width = max(len(fault) for fault, _, _ in OUTCOMES)
    print("\nfault".ljust(width + 1) + " | result | outcome")
    print("-" * (width + 1) + "-+--------+--------")
    for fault, passed, outcome in OUTCOMES:
        print(f"{fault.ljust(width)} | {'ok' if passed else 'FAILED':6} | {outcome}")


def db(query, default=None):
    """An ORM query that tolerates a PostgreSQL restart (reconnects next)."""
    from django.db import connections
    from django.db.utils import Error

    try:
        return query()
    except Error:
        connections.close_all()
        return default


def restart_redis(stack, name):
    for running in [n for n in stack.processes if n.startswith("redis")]:
        stack.kill(running)
    stack.start_redis(name)
    wait_for(
        lambda: subprocess.run(
            ["redis-cli", "-p", str(stack.redis_port), "ping"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        == "PONG",
        60,
        "Redis to answer",
    )


def queued_messages(stack, queue="modem_upgrader"):
    """The task messages waiting in a Redis queue (Celery's list, in the
    broker's database: tests/openwisp2/settings.py), as text."""
    return subprocess.run(
        ["redis-cli", "-p", str(stack.redis_port), "-n", "2"]
        + ["lrange", queue, "0", "-1"],
        capture_output=True,
        text=True,
    ).stdout


def restart_postgres():
    from django.db import connections

    env = dict(os.environ)
    script = os.path.join(REPO, "scripts", "postgres.sh")
    subprocess.run([script, "stop"], cwd=REPO, env=env, check=True)
    subprocess.run(
        [script, "start"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )
    connections.close_all()


def worker_holding(stack, router):
    """The worker whose process holds an SSH connection to ``router``."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dst", f"{router.host}:{router.port}"],
        capture_output=True,
        text=True,
    ).stdout
    for pid in re.findall(r"pid=(\d+)", listing):
        try:
            group = os.getpgid(int(pid))
        except ProcessLookupError:
            continue
        for name, process in stack.processes.items():
            if name.startswith("worker") and process.pid == group:
                return name
    return None


def op_dir(router, shared_dir, operation):
    return router.path_on_router(f"{shared_dir}/openwisp-modem-upgrader/{operation.pk}")


def journal_records(router, shared_dir, operation):
    try:
        with open(os.path.join(op_dir(router, shared_dir, operation), "journal")) as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def acked(router, shared_dir, operation):
    try:
        with open(os.path.join(op_dir(router, shared_dir, operation), "acked")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def images_left(router, shared_dir):
    base = router.path_on_router(f"{shared_dir}/openwisp-modem-upgrader")
    try:
        return [name for name in os.listdir(base) if name.endswith(".bin")]
    except OSError:
        return []


def truthful(fleet, operations, shared_dir):
    """What every fault must leave: a list of problems (empty: none)."""
    problems = []
    by_device = {op.device_id: op for op in operations}
    for router, device in fleet:
        op = by_device.get(device.pk)
        if op is None:
            problems.append(f"{device.name}: no operation")
            continue
        name = device.name
        if op.status != "success":
            last = op.log.strip().splitlines()[-1:] or [""]
            problems.append(f"{name}: {op.status} ({last[0][:160]})")
        firmware = router.modem_state()["firmware"]
        if (op.status == "success") != (firmware == VERSION):
            problems.append(f"{name}: {op.status} but the modem runs {firmware}")
        if flashes(router) != 1:
            problems.append(f"{name}: flashed {flashes(router)} times")
        records = journal_records(router, shared_dir, op)
        if op.device_seq != records:
            problems.append(
                f"{name}: device_seq {op.device_seq}, journal holds {records}"
            )
        if images_left(router, shared_dir):
            problems.append(f"{name}: image left {images_left(router, shared_dir)}")
    return problems


def summary(problems, text):
    if problems:
        return f"{text}; PROBLEMS: {'; '.join(problems[:4])}"
    return text


def main():
    stack = Stack()
    os.environ.update(
        MODEM_STUCK_OPERATION_TIMEOUT=str(STUCK_TIMEOUT),
        MODEM_REPUBLISH_AFTER=str(REPUBLISH_AFTER),
        MODEM_FOLLOW_LEASE=str(FOLLOW_LEASE),
    )
    routers = []
    failed = True
    try:
        started = time.monotonic()
        # no worker yet: the first fault needs the fan-out message queued
        stack.start(worker=None)
        print(f"stack up in {time.monotonic() - started:.1f}s (logs in {stack.tmp})")
        import django

        django.setup()
        faults(stack, routers)
        failed = not all(passed for _, passed, _ in OUTCOMES)
        print(f"fault run took {time.monotonic() - started:.0f}s")
    finally:
        print_table()
        record_tally(failed=failed, label="fault-stack")
        for router in routers:
            router.stop()
        stack.stop()
    if failed:
        sys.exit(1)


def faults(stack, routers):
    from device.firmware import write_firmware_stream
    from django.core.files import File

    from openwisp_modem_upgrader.batch import create_batch
    from openwisp_modem_upgrader.tests import (
        ModemBatchUpgradeOperation,
        ModemUpgradeOperation,
        TestModemUpgraderMixin,
    )

    factory = TestModemUpgraderMixin()
    org = factory._get_org()
    firmware = os.path.join(stack.tmp, "fn990a.bin")
    write_firmware_stream(firmware, VERSION, model="FN990A28", size=IMAGE_SIZE)
    build = factory._create_build(version=VERSION, modem_model="FN990A28")
    with open(firmware, "rb") as stream:
        image = factory._create_image(build=build, file=File(stream, name="fn.bin"))
    t0 = time.monotonic()
    fleets = {}
    for phase, first, flash in (("a", 200, FLASH_A), ("b", 210, FLASH_B)):
        shared_dir = os.path.join(stack.tmp, f"fleet-{phase}")
        fleet = [new_router_device(factory, routers, first + i) for i in range(FLEET)]
        for router, _ in fleet:
            router.mount_tmpfs(shared_dir, 16 * 1024)
            router.set_modem(flash_duration=flash, reboot_delay=1)
        fleets[phase] = (fleet, shared_dir)
    print(f"{2 * FLEET} routers started in {time.monotonic() - t0:.1f}s")

    def options(shared_dir, **extra):
        return {
            "remote_dir": shared_dir,
            "tool_path": "uxfp",
            "transfer_timeout": 60,
            "upgrade_timeout": 120,
            "reboot_timeout": 30,
            "progress_interval": 1,
            **extra,
        }

    def mass_upgrade(fleet, upgrade_options):
        return create_batch(
            build,
            org,
            device_ids=[str(device.pk) for _, device in fleet],
            max_concurrent=FLEET,
            upgrade_options=upgrade_options,
        )

    def operations_of(batch):
        return list(ModemUpgradeOperation.objects.filter(batch=batch))

    def all_flashing(batch):
        ops = db(lambda: operations_of(batch), [])
        return len(ops) == FLEET and all(
            op.flash_started or op.status == "success" for op in ops
        )

    def all_terminal(batch):
        ops = db(lambda: operations_of(batch), [])
        return (
            len(ops) == FLEET
            and all(op.status in ("success", "failed", "aborted") for op in ops)
            and ops
        )

    # --- A: the fan-out and the flashes ------------------------------------
    fleet, shared_dir = fleets["a"]
    print(f"A. {FLEET} routers: Redis, the ASGI server, PostgreSQL restarted")
    batch = mass_upgrade(fleet, options(shared_dir))
    # no worker yet: the fan-out message waits in Redis (a short task: the
    # control queue)
    wait_for(
        lambda: "fan_out_batch" in queued_messages(stack, "modem_upgrader_control"),
        60,
        "the fan-out message queued in Redis",
    )
    restart_redis(stack, "redis-2")
    redis_restarted = time.monotonic()
    stack.start_worker("worker-1")
    stack.start_worker("worker-2")
    print("  Redis restarted with the fan-out queued; workers started")
    wait_for(
        lambda: db(
            lambda: ModemBatchUpgradeOperation.objects.get(pk=batch.pk).started_at
        ),
        # two workers starting on a busy machine take most of it
        REPUBLISH_AFTER + 150,
        "the fan-out after the Redis restart",
    )
    fanned_out = time.monotonic() - redis_restarted
    wait_for(lambda: all_flashing(batch), 180, "every router of A flashing")
    print(f"  fanned out {fanned_out:.1f}s after the restart; all flashing")

    def flashing_now():
        return {op.pk for op in operations_of(batch) if op.status == "in-progress"}

    def follow_ups():
        return sum(
            stack.log(name).count("follow_modem_upgrade[")
            for name in stack.processes
            if name.startswith("worker")
        )

    flashing_at_redis = flashing_now()
    follow_ups_before = follow_ups()
    # from the kill, not from Redis answering again: a flash may end during
    # the outage (its router's reports need no Redis), which on a busy
    # machine lasts long enough to see it
    redis_flash_restart = time.time()
    restart_redis(stack, "redis-3")
    print(f"  Redis restarted during {len(flashing_at_redis)} flashes")
    time.sleep(1)
    flashing_at_pg = flashing_now()
    restart_postgres()
    pg_restarted = time.time()
    served_offset = len(stack.log("asgi"))
    print(f"  PostgreSQL restarted during {len(flashing_at_pg)} flashes")
    # the web tier stores reports again (a condition: on a busy machine the
    # first one may take longer than on an idle one)
    served_after_pg = wait_for(
        lambda: _reports_served(stack.log("asgi")[served_offset:]),
        120,
        "a report stored after the PostgreSQL restart",
    )
    stored_after = time.time() - pg_restarted

    # the ASGI server goes away while every router reports
    stack.kill("asgi")
    asgi_killed = time.monotonic()
    ops = db(lambda: operations_of(batch), [])

    def journals():
        return {
            op.pk: journal_records(r, shared_dir, op)
            for (r, _), op in _pairs(fleet, ops)
        }

    at_kill = journals()
    # away at least 3s, and until a router wrote a record meanwhile
    time.sleep(3)
    wait_for(
        lambda: any(n > at_kill[pk] for pk, n in journals().items()),
        60,
        "a router to write a journal record while the ASGI server is away",
    )
    stack.start_asgi("asgi-2")
    stack.wait_http()
    at_back = journals()
    print(f"  ASGI server restarted after {time.monotonic() - asgi_killed:.0f}s away")

    wait_for(lambda: all_terminal(batch), 240, "every operation of A to finish")
    ops = operations_of(batch)
    by_pk = {op.pk: op for op in ops}
    problems = truthful(fleet, ops, shared_dir)
    verdict(
        "Redis restarted with the fan-out queued",
        not problems,
        summary(
            problems,
            f"fan-out message lost, the driver published it again: fanned out "
            f"{fanned_out:.0f}s after, {_counts(ops)}",
        ),
    )

    def finished_after(pks, moment):
        return [
            pk
            for pk in pks
            if by_pk[pk].finished_at and by_pk[pk].finished_at.timestamp() > moment
        ]

    followed = finished_after(flashing_at_redis, redis_flash_restart)
    verdict(
        "Redis restarted during the flashes",
        not problems and flashing_at_redis and len(followed) == len(flashing_at_redis),
        summary(
            problems,
            f"{len(followed)}/{len(flashing_at_redis)} flashing at the restart "
            f"finished after it; {follow_ups() - follow_ups_before} follow-ups "
            "ran since (workers and beat reconnected)",
        ),
    )
    followed = finished_after(flashing_at_pg, pg_restarted)
    verdict(
        "PostgreSQL restarted during the flashes",
        not problems
        and flashing_at_pg
        and served_after_pg > 0
        and len(followed) == len(flashing_at_pg),
        summary(
            problems,
            f"the web tier stored {served_after_pg} report(s) {stored_after:.1f}s "
            f"after the restart; {len(followed)}/{len(flashing_at_pg)} flashing at the "
            "restart finished after it, none failed by the outage",
        ),
    )
    wrote_during_outage = [op for op in ops if at_back[op.pk] > at_kill[op.pk]]
    # what they wrote while the server was away reached it over HTTP
    caught_up = [
        op
        for (router, _), op in _pairs(fleet, ops)
        if at_back[op.pk] > at_kill[op.pk]
        and acked(router, shared_dir, op) >= at_back[op.pk]
    ]
    replayed = _reports_served(stack.log("asgi-2"))
    verdict(
        "ASGI server restarted while routers report",
        not problems and caught_up and replayed,
        summary(
            problems,
            f"{len(wrote_during_outage)} routers wrote journal records while "
            f"it was away, {len(caught_up)} of them replayed them to the new "
            "server over HTTP; journals complete on the server",
        ),
    )
    print(
        f"  phase A done in {time.monotonic() - redis_restarted:.0f}s: {_counts(ops)}"
    )

    # --- B: the transfers, then beat ---------------------------------------
    fleet, shared_dir = fleets["b"]
    print(f"B. {FLEET} routers, transfers capped at {TRANSFER_RATE} B/s")
    started = time.monotonic()
    batch = mass_upgrade(fleet, options(shared_dir, max_transfer_rate=TRANSFER_RATE))

    def image_bytes(router):
        """Bytes of the image the router holds now (its partial copy)."""
        path = router.path_on_router(
            f"{shared_dir}/openwisp-modem-upgrader/{image.sha256}.bin"
        )
        try:
            return os.path.getsize(path)
        except OSError:
            return 0

    def transfer_mid_way(exclude=()):
        """A router holding between 10% and 60% of the image, its transfer
        under way on a worker: the fault lands there, at any machine speed
        (a time or the database's progress, updated each second, could land
        it once the transfer is over)."""
        for router, device in fleet:
            if device.pk in exclude or not low <= image_bytes(router) <= high:
                continue
            worker = worker_holding(stack, router)
            # ss is slow on a busy machine: still mid-way?
            held = image_bytes(router)
            if worker and low <= held <= high:
                op = db(
                    lambda: ModemUpgradeOperation.objects.filter(
                        batch=batch, device=device
                    ).first()
                )
                if op and op.status == "in-progress" and not op.flash_started:
                    return op, router, worker, held
        return None

    low, high = image.size // 10, image.size * 6 // 10
    rebooted_op, rebooted, _, held_at_reboot = wait_for(
        transfer_mid_way, 90, "a transfer between 10% and 60%"
    )
    rebooted.reboot(down_seconds=1)
    print(
        f"  {rebooted_op.device.name} rebooted during its transfer "
        f"({held_at_reboot} bytes of {image.size} there)"
    )

    killed_op, _, worker, held = wait_for(
        lambda: transfer_mid_way(exclude={rebooted_op.device_id}),
        90,
        "another transfer between 10% and 60%",
    )
    stack.kill(worker)
    stack.start_worker("worker-3")
    print(
        f"  {worker} killed with SIGKILL during the transfer to "
        f"{killed_op.device.name} ({held} bytes of {image.size} there)"
    )

    wait_for(lambda: all_flashing(batch), 180, "every router of B flashing")
    stack.kill("beat")
    beat_stopped = time.time()
    time.sleep(STUCK_TIMEOUT + 3)
    stack.start_beat("beat-2")
    beat_started = time.time()
    print(f"  beat stopped for {beat_started - beat_stopped:.0f}s, started again")
    wait_for(lambda: all_terminal(batch), 240, "every operation of B to finish")
    ops = operations_of(batch)
    problems = truthful(fleet, ops, shared_dir)
    by_pk = {op.pk: op for op in ops}

    op = by_pk[rebooted_op.pk]
    verdict(
        "router rebooted during the transfer",
        not problems
        and op.attempts >= 2
        and "transfer interrupted" in op.log
        and op.log.count(f"transferring {image.size} bytes") >= 2,
        summary(
            problems,
            f"transfer interrupted, image sent again in full (the reboot "
            f"cleared /tmp): {op.status} after {op.attempts} attempts, "
            f"{op.bytes_sent} bytes sent",
        ),
    )
    if not OUTCOMES[-1][1]:
        print(op.log)
    lost = [op for op in ops if "the worker stopped before the flash started" in op.log]
    op = by_pk[killed_op.pk]
    # the retry continued from what the router held, at least the bytes
    # there when the worker was killed
    resumed_from = re.search(
        r"resuming the transfer: the router holds the first (\d+)", op.log
    )
    resumed_from = int(resumed_from.group(1)) if resumed_from else None
    # the killed try's bytes were counted as they went out (the worker ran
    # no ``finally``): the image bytes exceed what the retry sent
    from openwisp_modem_upgrader.upgraders.wrapper import scripts_size

    tries = op.log.count("transferring ") + op.log.count("resuming the transfer")
    image_bytes_counted = op.bytes_sent - tries * scripts_size()
    verdict(
        "worker killed (SIGKILL) during the transfer",
        not problems
        and op in lost
        and resumed_from is not None
        and held <= resumed_from < image.size
        and f"sending the other {image.size - resumed_from}" in op.log
        and image_bytes_counted > image.size - resumed_from,
        summary(
            problems,
            f"killed with {held} of {image.size} bytes on the router; "
            f"{len(lost)} transfer(s) lost with the worker, retried after "
            f"{STUCK_TIMEOUT}s of silence; the retry resumed from byte "
            f"{resumed_from} and sent the other "
            f"{image.size - (resumed_from or 0)}; {image_bytes_counted} image bytes "
            f"counted over {tries} tries: {op.status}",
        ),
    )
    wrongly_lost = [
        op
        for op in ops
        if op not in lost and op.attempts != 1 and op.pk != rebooted_op.pk
    ]
    finished_while_stopped = [
        op
        for op in ops
        if op.finished_at and beat_stopped < op.finished_at.timestamp() < beat_started
    ]
    verdict(
        f"beat stopped {beat_started - beat_stopped:.0f}s (> {STUCK_TIMEOUT}s)",
        not problems and not wrongly_lost,
        summary(
            problems,
            f"{len(finished_while_stopped)} finished while it was stopped, "
            f"the rest after; no flashing operation taken for a lost worker",
        ),
    )
    print(f"  phase B done in {time.monotonic() - started:.0f}s: {_counts(ops)}")


def _reports_served(log):
    return sum(
        1
        for line in log.splitlines()
        if "/upgrade-operation/" in line and " 200 " in line
    )


def _pairs(fleet, ops):
    by_device = {op.device_id: op for op in ops}
    return [(pair, by_device[pair[1].pk]) for pair in fleet if pair[1].pk in by_device]


def _counts(ops):
    counts = {}
    for op in ops:
        counts[op.status] = counts.get(op.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


if __name__ == "__main__":
    main()
