#!/usr/bin/env python
"""The upgrade path on real parts: PostgreSQL/PostGIS, Redis, Celery workers
in their own processes, the ASGI server receiving the routers' reports, and
emulated routers (dropbear + busybox + fake uxfp) on distinct loopback
addresses.

Checks, exiting non-zero on the first failure:
1. one upgrade through a real worker ends in success with the new version;
2. a mass upgrade of several routers, run by two worker processes;
3. the worker is killed (SIGKILL) mid-flash: the router finishes alone, the
   task (acks_late) is delivered again to a fresh worker, which refuses it,
   the stuck-operation sweeper records the truth, and the modem was flashed
   exactly once;
4. the worker is killed between the point of no return and the start of the
   flashing wrapper: no journal on the router, the sweeper says nothing was
   written to the modem, no flash, the image removed from the router;
5. a fleet flashing at once on 2 worker processes;
6. a bad image mass-upgraded with a canary, several workers racing: only the
   canary's routers run the tool (counted on the routers), and no more than
   what was in flight at the deciding failure after a resume or in a retry;
7. one worker process on threads (``-P threads``) carries several capped
   transfers at once; a router's link is cut mid-transfer and the retry
   continues from what it holds; the worker is killed mid-transfer and a
   new one continues every image where its router's copy ends.
8. a build that breaks the data session on every router, mass-upgraded with
   a canary and health verification: the canary ends "flashed, service not
   restored", the rollout stops there, the remediation re-flashes the canary
   back to its previous build, whose service is verified.

``MODEM_STACK_ONLY=7`` or ``MODEM_STACK_ONLY=8`` runs that scenario alone.

Run by scripts/test.sh; needs scripts/postgres.sh's cluster (DB=postgres...).
"""

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
CELERY = os.path.join(REPO, ".venv", "bin", "celery")
sys.path[:0] = [REPO, TESTS]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="modem-stack-")
        self.processes = {}
        self.http_port = free_port()
        self.redis_port = free_port()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="openwisp2.settings",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}",
            POSTGRES_DB=f"modem_stack_{os.getpid()}",
            DEVICE_REPORT_BASE_URL=f"http://127.0.0.1:{self.http_port}",
            # a killed worker's task comes back within the run (production
            # waits past the task's time limit)
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
            CELERY_UNACKED_MUTEX_EXPIRE="2",
            # the engine at the run's time scale (tests/openwisp2/settings.py):
            # beat drives every second, routers are read every 2 s, and the
            # worker's part of an upgrade is limited to transfer + 20 s,
            # far less than a flash
            MODEM_DRIVER_SCHEDULE="1",
            MODEM_FOLLOW_INTERVAL="2",
            MODEM_FOLLOW_START_GRACE="8",
            MODEM_TASK_TIMEOUT="20",
            MODEM_RETRY_BACKOFF="2",
            # a follow-up lost with a killed worker is leased again after 10 s
            MODEM_FOLLOW_LEASE="10",
        )
        os.environ.pop("TESTING", None)

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        self.processes[name] = subprocess.Popen(
            argv,
            cwd=TESTS,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})),
            # its own process group: a kill takes its pool processes too
            start_new_session=True,
        )
        return self.processes[name]

    def log(self, name):
        with open(os.path.join(self.tmp, f"{name}.log")) as log:
            return log.read()

    def kill(self, name):
        """SIGKILL to the whole worker (main and pool processes), as when its
        machine dies: no orphaned pool process finishes the task later. A
        worker's control-queue companion (``start_worker``) dies with it."""
        for each in (name, f"{name}-control"):
            process = self.processes.get(each)
            if process is None:
                continue
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()

    def start(self, worker="worker-1"):
        """Redis, the database, the ASGI server, beat and ``worker`` (none
        when ``None``)."""
        self.start_redis()
        subprocess.run(
            [
                "createdb",
                "-h",
                os.environ["POSTGRES_HOST"],
                "-p",
                os.environ["POSTGRES_PORT"],
                "-U",
                "postgres",
                os.environ["POSTGRES_DB"],
            ],
            check=True,
        )
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=TESTS,
            check=True,
        )
        self.start_asgi()
        if worker:
            self.start_worker(worker)
        self.start_beat()
        self.wait_http()

    def start_redis(self, name="redis"):
        return self.spawn(
            name,
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.tmp,
            ],
        )

    def start_asgi(self, name="asgi"):
        return self.spawn(
            name,
            [
                PYTHON,
                "manage.py",
                "runserver",
                f"127.0.0.1:{self.http_port}",
                "--noreload",
            ],
        )

    def start_beat(self, name="beat"):
        return self.spawn(
            name,
            [
                CELERY,
                "-A",
                "openwisp2",
                "beat",
                "-l",
                "info",
                "-s",
                os.path.join(self.tmp, "beat-schedule"),
            ],
        )

    def start_worker(self, name, env=None, threads=0):
        """A worker per queue (docs/developer/deployment.rst): ``name`` for
        the transfers (the project routes this module's tasks to their own
        queue), ``name-control`` for the engine's short tasks. ``threads``:
        the transfer worker is one process carrying that many tasks on
        threads (``-P threads``)."""
        self.spawn(f"{name}-control", self.worker_command(name, control=True), env)
        return self.spawn(name, self.worker_command(name, threads=threads), env=env)

    def worker_command(self, name, control=False, threads=0):
        if control:
            # 2 processes: the run follows 50 flashing routers every 2 s
            name, queues, concurrency = f"{name}-control", "modem_upgrader_control", 2
        else:
            queues, concurrency = "celery,modem_upgrader", threads or 2
        pool = ["-P", "threads"] if threads and not control else []
        return [
            CELERY,
            "-A",
            "openwisp2",
            "worker",
            *pool,
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-l",
            "info",
            "-n",
            f"{name}@%h",
            "--without-heartbeat",
            "--without-mingle",
        ]

    def wait_http(self, timeout=240):
        # an ASGI server importing Django on a saturated 2-core machine
        # took over a minute to listen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), 1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the ASGI server did not start")

    def stop(self):
        from django.db import connections

        connections.close_all()
        for name, process in self.processes.items():
            if process.poll() is None:
                self.kill(name)
        subprocess.run(
            [
                "dropdb",
                "--if-exists",
                "-h",
                os.environ["POSTGRES_HOST"],
                "-p",
                os.environ["POSTGRES_PORT"],
                "-U",
                "postgres",
                os.environ["POSTGRES_DB"],
            ],
            check=False,
        )


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


CHECKS_PASSED = []
# issue 11's figure: routers flashing at once on 2 worker processes
FLEET_SIZE = int(os.environ.get("MODEM_FLEET_SIZE", 50))
FLEET_FLASH_SECONDS = float(os.environ.get("MODEM_FLEET_FLASH_SECONDS", 60))
# seconds before Redis delivers again a task a killed worker held; kombu
# looks for such tasks every 10 s
VISIBILITY_TIMEOUT = 5


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    CHECKS_PASSED.append(message)
    print(f"  ok: {message}")


def record_tally(failed, label="real-stack"):
    """One line for the run's ``N passed, M failed`` (see scripts/tally.sh)."""
    tally = os.environ.get("TEST_TALLY")
    if tally:
        with open(tally, "a") as tally_file:
            tally_file.write(f"{label} {len(CHECKS_PASSED)} {int(failed)}\n")


def new_router_device(factory, routers, index, detected=True):
    """An emulated router (added to ``routers``) and its device;
    ``detected=False``: the server knows nothing of its modem yet (a router
    freshly added)."""
    from device.router import EmulatedRouter

    from openwisp_modem_upgrader.tests import DeviceModemFirmware

    router = EmulatedRouter(host=f"127.0.0.{10 + index}")
    router.start()
    routers.append(router)
    org = factory._get_org()
    device = factory._create_device(
        organization=org,
        name=f"router-{index}",
        mac_address=f"02:00:00:00:{index // 256:02x}:{index % 256:02x}",
        management_ip=router.host,
        last_ip=router.host,
    )
    factory._create_config(device=device)
    credentials = factory._create_credentials(
        organization=org,
        name=f"router-{index}",
        params={"username": "root", "key": router.private_key, "port": router.port},
    )
    factory._create_device_connection(device=device, credentials=credentials)
    if detected:
        DeviceModemFirmware.objects.create(
            device=device,
            modem_model="FN990A28",
            modem_firmware_version="M0R.010000-B020",
        )
    return router, device


def flashes(router):
    """How many times uxfp flashed this router's modem (the emulator's log)."""
    return sum(1 for event in router.modem_state()["events"] if event[0] == "uxfp")


def main():
    stack = Stack()
    routers = []
    try:
        started = time.monotonic()
        stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s (logs in {stack.tmp})")
        import django

        django.setup()
        if os.environ.get("MODEM_STACK_ONLY") == "8":
            from openwisp_modem_upgrader.tests import TestModemUpgraderMixin

            no_service_rollout(
                stack,
                functools.partial(new_router_device, TestModemUpgraderMixin(), routers),
            )
        else:
            scenarios(stack, routers)
    except BaseException:
        record_tally(failed=True)
        raise
    else:
        record_tally(failed=False)
    finally:
        for router in routers:
            router.stop()
        stack.stop()


def scenarios(stack, routers):
    from device.firmware import write_firmware_stream
    from django.core.files import File

    from openwisp_modem_upgrader.batch import (
        ExclusionReason,
        create_batch,
        preview_batch,
    )
    from openwisp_modem_upgrader.detection import queue_detection
    from openwisp_modem_upgrader.swapper import load_model
    from openwisp_modem_upgrader.tests import (
        Device,
        DeviceModemFirmware,
        ModemBatchUpgradeOperation,
        TestModemUpgraderMixin,
    )

    DeviceModemDetection = load_model("DeviceModemDetection")
    from openwisp_modem_upgrader.upgrade import start_upgrade

    factory = TestModemUpgraderMixin()
    org = factory._get_org()

    def not_detected_preview(preview):
        return (
            preview["excluded"]
            .filter(exclusion_reason=ExclusionReason.NOT_DETECTED)
            .values_list("pk", flat=True)
        )

    version = "M0R.010100-B024"
    firmware = os.path.join(stack.tmp, "fn990a.bin")
    write_firmware_stream(firmware, version, model="FN990A28", size=2 * 1024 * 1024)
    build = factory._create_build(version=version, modem_model="FN990A28")
    with open(firmware, "rb") as stream:
        image = factory._create_image(build=build, file=File(stream, name="fn.bin"))

    router_device = functools.partial(new_router_device, factory, routers)

    def options(router):
        return {
            "remote_dir": router.tmp_dir,
            "tool_path": "uxfp",  # found in each router's PATH
            "upgrade_timeout": 60,
            "reboot_timeout": 30,
            "progress_interval": 1,
        }

    if os.environ.get("MODEM_STACK_ONLY") == "7":
        Operation = load_model("ModemUpgradeOperation")
        thread_pool_transfers(stack, router_device, image, options, Operation)
        return

    print("1. one upgrade through a real worker")
    router, device = router_device(1)
    t0 = time.monotonic()
    operation = start_upgrade(device, image, options(router))
    operation = wait_for(
        lambda: type(operation)
        .objects.filter(pk=operation.pk, status__in=["success", "failed", "aborted"])
        .first(),
        120,
        "the upgrade to finish",
    )
    check(
        operation.status == "success",
        f"upgrade succeeded in "
        f"{time.monotonic() - t0:.1f}s ({operation.log.splitlines()[-1]})",
    )
    check(router.modem_state()["firmware"] == version, "the modem runs the new version")
    check(
        operation.device_seq > 0,
        f"router journal applied up to seq {operation.device_seq}",
    )

    print("2. a fleet never seen before: detected, then mass-upgraded (2 workers)")
    stack.start_worker("worker-2")
    batch_routers = [router_device(i, detected=False) for i in range(2, 6)]
    fleet = Device.objects.filter(pk__in=[d.pk for _, d in batch_routers])
    preview = preview_batch(ModemBatchUpgradeOperation(build=build, organization=org))
    check(
        set(not_detected_preview(preview)) >= {d.pk for d in fleet},
        "the preview excludes the 4 new routers: modem not detected yet",
    )
    t0 = time.monotonic()
    queued = queue_detection(fleet)

    def fleet_detected():
        done = DeviceModemDetection.objects.filter(device__in=fleet, status="ok")
        return list(done) if done.count() == len(batch_routers) else None

    detections = wait_for(fleet_detected, 60, "the detection of the new routers")
    modems = DeviceModemFirmware.objects.filter(device__in=fleet)
    check(
        queued == 4
        and len(detections) == 4
        and modems.count() == 4
        and all(m.modem_model == "FN990A28" and m.usb_path for m in modems),
        f"a worker detected the 4 routers' modems in {time.monotonic() - t0:.1f}s "
        f"({', '.join(sorted({m.modem_firmware_version for m in modems}))})",
    )
    # one remote_dir for the batch; each router sees its own filesystem
    # there, as real routers do (the emulated ones share the host's)
    shared_dir = os.path.join(stack.tmp, "routers")
    for router, _ in batch_routers:
        router.mount_tmpfs(shared_dir, 64 * 1024)
    t0 = time.monotonic()
    batch = create_batch(
        build,
        factory._get_org(),
        upgrade_options={**options(batch_routers[0][0]), "remote_dir": shared_dir},
    )
    Operation = type(operation)
    batch = wait_for(
        lambda: type(batch)
        .objects.filter(pk=batch.pk, status__in=["success", "failed", "cancelled"])
        .first(),
        180,
        "the mass upgrade",
    )
    counts = batch.status_counts()
    check(
        batch.status == "success" and counts["success"] == 4,
        f"mass upgrade {batch.status}: {counts['success']}/{counts['total']} in "
        f"{time.monotonic() - t0:.1f}s",
    )

    def start_worker_after_visibility(name, killed_at):
        """kombu restores unacknowledged messages when a worker starts, then
        only every 100 s: start the next worker once the killed worker's task
        is visible again."""
        time.sleep(max(0.0, killed_at + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
        stack.start_worker(name)

    def redelivery_refused(worker, operation):
        return f"modem upgrade {operation.pk}: task delivered again" in stack.log(
            worker
        )

    def router_files(router):
        base = os.path.join(router.tmp_dir, "openwisp-modem-upgrader")
        return sorted(os.listdir(base)) if os.path.isdir(base) else []

    print("3. every worker killed mid-flash: the flash goes on, followed later")
    router, device = batch_routers[0]
    router.set_modem(firmware="M0R.010000-B020", flash_duration=4)
    DeviceModemFirmware.objects.filter(device=device).update(
        modem_firmware_version="M0R.010000-B020"
    )
    flashes_before = flashes(router)
    operation = start_upgrade(device, image, options(router))
    journal = os.path.join(
        router.tmp_dir, "openwisp-modem-upgrader", str(operation.pk), "journal"
    )
    # the wrapper runs on the router (the point of no return alone is not
    # enough: scenario 4 kills the worker between the two)
    wait_for(lambda: os.path.exists(journal), 60, "the flash to start")
    for name in ("worker-1", "worker-2", "beat"):
        stack.kill(name)
    print("  both workers and beat killed with SIGKILL during the flash")
    exit_file = os.path.join(
        router.tmp_dir, "openwisp-modem-upgrader", str(operation.pk), "exit_code"
    )
    wait_for(lambda: os.path.exists(exit_file), 60, "the router to finish alone")
    operation.refresh_from_db()
    check(
        operation.status == "in-progress",
        "the router finished with no worker alive: the operation waits in the "
        "database",
    )
    stack.start_worker("worker-3")
    stack.start_beat("beat-2")
    operation = wait_for(
        lambda: Operation.objects.filter(pk=operation.pk)
        .exclude(status="in-progress")
        .first(),
        60,
        "the follow-up of the new worker",
    )
    check(
        operation.status == "success" and operation.attempts == 1,
        f"a new worker's follow-up finished it: {operation.status} "
        f"({operation.log.splitlines()[-1]})",
    )
    check(
        flashes(router) - flashes_before == 1,
        f"the modem was flashed exactly once "
        f"({flashes(router) - flashes_before} uxfp run)",
    )

    print("4. worker killed after the point of no return, before the wrapper")
    stack.kill("worker-3")
    router, device = batch_routers[1]
    router.set_modem(firmware="M0R.010000-B020", flash_duration=0.5)
    DeviceModemFirmware.objects.filter(device=device).update(
        modem_firmware_version="M0R.010000-B020"
    )
    flashes_before = flashes(router)
    marker = os.path.join(stack.tmp, "crossed-point-of-no-return")
    stack.start_worker(
        "worker-4", env={"MODEM_WORKER_PAUSE_AFTER_NO_RETURN": f"60:{marker}"}
    )
    operation = start_upgrade(device, image, options(router))
    wait_for(lambda: os.path.exists(marker), 60, "the point of no return")
    stack.kill("worker-4")
    killed_at = time.monotonic()
    operation.refresh_from_db()
    print(
        f"  worker killed with SIGKILL after the point of no return "
        f"(flash_started={operation.flash_started}), router holds "
        f"{router_files(router)}"
    )
    check(
        operation.flash_started and str(operation.pk) not in router_files(router),
        "killed inside the window: point of no return crossed, no journal",
    )
    start_worker_after_visibility("worker-5", killed_at)
    operation = wait_for(
        lambda: Operation.objects.filter(pk=operation.pk)
        .exclude(status__in=["in-progress", "idle"])
        .first(),
        90,
        "the follow-up to find the modem untouched and the retry",
    )
    check(
        operation.status == "success"
        and operation.attempts == 2
        and "nothing was written to the modem" in operation.log,
        f"no journal: modem untouched, retried: {operation.status} after "
        f"{operation.attempts} attempts",
    )
    check(
        redelivery_refused("worker-5", operation),
        "the killed worker's task was delivered again and refused",
    )
    check(
        flashes(router) - flashes_before == 1,
        "the modem was flashed exactly once, by the retry",
    )

    fleet_in_flight(stack, routers, router_device, image, build, Operation, flashes)
    bad_image_rollout(stack, router_device)
    thread_pool_transfers(stack, router_device, image, options, Operation)
    no_service_rollout(stack, router_device)


def fleet_in_flight(stack, routers, router_device, image, build, Operation, flashes):
    """Issue 11's figure: upgrades in flight with 2 worker processes."""
    from openwisp_modem_upgrader.batch import create_batch
    from openwisp_modem_upgrader.tests import TestModemUpgraderMixin

    count = FLEET_SIZE
    worker_processes = 2  # start_worker's "-c 2"
    print(f"5. {count} routers flashing at once on 2 worker processes")
    for name in list(stack.processes):
        if name.startswith("worker") and stack.processes[name].poll() is None:
            stack.kill(name)
    stack.start_worker("worker-6")  # -c 2: two worker processes
    t0 = time.monotonic()
    fleet = [router_device(100 + i) for i in range(count)]
    shared_dir = os.path.join(stack.tmp, "fleet")
    for router, _ in fleet:
        router.mount_tmpfs(shared_dir, 16 * 1024)
        router.set_modem(flash_duration=FLEET_FLASH_SECONDS, reboot_delay=1)
    print(f"  {count} routers started in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    batch = create_batch(
        build,
        TestModemUpgraderMixin()._get_org(),
        device_ids=[str(device.pk) for _, device in fleet],
        max_concurrent=count,
        upgrade_options={
            "remote_dir": shared_dir,
            "tool_path": "uxfp",
            "transfer_timeout": 10,
            "upgrade_timeout": 300,
            "reboot_timeout": 60,
            "progress_interval": 5,
        },
    )
    operations = Operation.objects.filter(batch=batch)
    wait_for(lambda: operations.count() == count, 180, "the fan-out")
    peak, restarted = 0, False
    while time.monotonic() - t0 < FLEET_FLASH_SECONDS * 4 + 300:
        flashing = operations.filter(status="in-progress", flash_started=True).count()
        peak = max(peak, flashing)
        # every worker and beat die mid-batch, once no upgrade needs a
        # worker's part any more (each wrapper runs and has reported) and
        # flashes are in flight: nothing is lost. A condition, not "all
        # flashing": on a busy machine the first flashes end before the
        # last ones start.
        waiting_for_a_worker = operations.filter(
            status__in=["idle", "in-progress"], device_seq=0
        ).exists()
        if flashing and not waiting_for_a_worker and not restarted:
            for name in ("worker-6", "beat-2"):
                stack.kill(name)
            time.sleep(3)  # the outage
            stack.start_worker("worker-7")
            stack.start_beat("beat-3")
            restarted = time.monotonic() - t0
            print(
                f"  every wrapper running after {restarted:.1f}s, {flashing} "
                "flashing: worker and beat killed and restarted"
            )
        if not operations.filter(status__in=["idle", "in-progress"]).exists():
            break
        time.sleep(0.5)
    wall = time.monotonic() - t0
    batch.refresh_from_db()
    counts = batch.status_counts()
    durations = sorted(
        (op.finished_at - op.started_at).total_seconds() for op in operations
    )
    per_upgrade = durations[len(durations) // 2]
    held_worker_wall = -(-count // 2) * per_upgrade
    flashing_at_once = peak_router_flashes(fleet, shared_dir, operations)
    # the point: flashes are not bounded by worker processes (a worker held
    # per flash allows at most 2); how far above 2 depends on the machine's
    # speed (all of them on an idle one), so the count is shown, not required
    check(
        flashing_at_once > worker_processes and peak > worker_processes,
        f"{flashing_at_once} routers flashing at the same time (uxfp running, "
        f"from the routers' journals), {peak} upgrades in flight, of {count}, "
        f"on {worker_processes} worker processes (a worker held per flash: at "
        f"most {worker_processes})",
    )
    check(
        counts["success"] == count and bool(restarted),
        f"batch of {count}: {counts['success']} succeeded in {wall:.0f}s across a "
        f"restart of every worker and beat; a worker held per flash would take "
        f"~{held_worker_wall:.0f}s ({-(-count // 2)} rounds of {per_upgrade:.0f}s)",
    )
    check(
        all(flashes(router) == 1 for router, _ in fleet),
        "each modem flashed exactly once",
    )
    refused = stack.log("asgi").count("/upgrade-operation/") and sum(
        1
        for line in stack.log("asgi").splitlines()
        if "/upgrade-operation/" in line and '" 409 ' in line
    )
    check(
        refused == 0,
        "no router report refused (409): flashes longer than the worker's time "
        "limit are not cut off",
    )


def peak_router_flashes(fleet, shared_dir, operations):
    """Most routers running the flashing tool at once: the intervals from
    each router's journal record "running <tool>" to "<tool> finished"."""
    by_device = {op.device_id: op.pk for op in operations}
    events = []
    for router, device in fleet:
        journal = f"{shared_dir}/openwisp-modem-upgrader/{by_device[device.pk]}/journal"
        output = subprocess.run(
            router.ssh_command(f"cat {journal}"),
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        start = end = None
        for line in output.splitlines():
            fields = line.split("\t", 4)
            if len(fields) != 5:
                continue
            if fields[4].startswith("running ") and " --file " in fields[4]:
                start = int(fields[1])
            elif fields[4].endswith(" finished") and start is not None:
                end = int(fields[1])
        if start is not None and end is not None:
            events += [(start, 1), (end, -1)]
    peak = current = 0
    # an end and a start in the same second: the end first
    for _, change in sorted(events):
        current += change
        peak = max(peak, current)
    return peak


# issue 18's rollout: a build whose flash fails on every router
BAD_FLEET_SIZE = int(os.environ.get("MODEM_BAD_FLEET_SIZE", 30))
BAD_CANARY, BAD_LIMIT = 2, 5


def restart_racing_workers(stack, prefix):
    """Two worker processes of concurrency 2 (four pool processes racing on
    dispatches and finishes) and a beat."""
    for name, process in list(stack.processes.items()):
        if name.startswith("worker") and process.poll() is None:
            stack.kill(name)
    for index in (1, 2):
        stack.start_worker(f"worker-{prefix}-{index}")
    if not any(
        name.startswith("beat") and process.poll() is None
        for name, process in stack.processes.items()
    ):
        stack.start_beat(f"beat-{prefix}")


def driver_passes(stack):
    """Driver passes the live workers ran so far (their logs)."""
    return sum(
        1
        for name, process in list(stack.processes.items())
        if name.startswith("worker") and process.poll() is None
        for line in stack.log(name).splitlines()
        if "drive_modem_upgrades" in line and "succeeded" in line
    )


def bad_image_rollout(stack, router_device):
    """Issue 18: a build refused by the tool on every router (a stream for
    another variant: the tool runs after the point of no return and fails),
    mass-upgraded with canary 2 and limit 5 by several worker processes.
    The routers that ran the tool are counted from the routers' own records
    (the emulator's uxfp runs), not from the server's counters."""
    from device.firmware import write_firmware_stream
    from django.core.files import File

    from openwisp_modem_upgrader.batch import create_batch, retry_failed
    from openwisp_modem_upgrader.rollout import resume_batch
    from openwisp_modem_upgrader.tests import (
        ModemBatchUpgradeOperation,
        ModemUpgradeOperation,
        TestModemUpgraderMixin,
    )

    count = BAD_FLEET_SIZE
    minimum = int(os.environ.get("MODEM_BAD_FLEET_MINIMUM", 2))
    print(
        f"6. a bad image to {count} routers: canary {BAD_CANARY}, limit "
        f"{BAD_LIMIT}, threshold 20 % from {minimum}, 2 workers x 2 racing"
    )
    restart_racing_workers(stack, "bad")
    factory = TestModemUpgraderMixin()
    org = factory._get_org()
    t0 = time.monotonic()
    fleet = [router_device(200 + i) for i in range(count)]
    shared_dir = os.path.join(stack.tmp, "bad-fleet")
    for router, _ in fleet:
        router.mount_tmpfs(shared_dir, 8 * 1024)
        router.set_modem(flash_duration=1, reboot_delay=1)
    print(f"  {count} routers started in {time.monotonic() - t0:.1f}s")
    version = "M0R.010300-B031"
    firmware = os.path.join(stack.tmp, "bad.bin")
    # a build for FN990A28 whose stream was made for the FN990A40: neither
    # the upload check nor the wrapper reads a stream's model (only its
    # chipset), so uxfp refuses it once started on the router
    write_firmware_stream(
        firmware, version, chipset="45.", model="FN990A40", size=256 * 1024
    )
    build = factory._create_build(
        version=version,
        modem_model="FN990A28",
        category=factory._create_category(name="bad image rollout"),
    )
    with open(firmware, "rb") as stream:
        factory._create_image(build=build, file=File(stream, name="bad.bin"))
    by_device = {device.pk: router for router, device in fleet}

    def touched(operations=None):
        """Routers that ran the tool (in ``operations``' devices if given)."""
        if operations is None:
            routers = [router for router, _ in fleet]
        else:
            routers = [
                by_device[pk] for pk in operations.values_list("device_id", flat=True)
            ]
        return sum(1 for router in routers if flashes(router))

    def settled(batch):
        """Stopped (or finished), nothing in flight, and two more driver
        passes since: nothing can start any more."""
        operations = ModemUpgradeOperation.objects.filter(batch=batch)
        wait_for(
            lambda: ModemBatchUpgradeOperation.objects.filter(
                pk=batch.pk, started_at__isnull=False
            ).exists(),
            60,
            "the fan-out",
        )
        wait_for(
            lambda: ModemBatchUpgradeOperation.objects.filter(
                pk=batch.pk, rollout_state="stopped"
            ).exists()
            or not operations.filter(status__in=["idle", "in-progress"]).exists(),
            240,
            "the batch to stop",
        )
        wait_for(
            lambda: not operations.filter(status="in-progress").exists()
            and not operations.filter(
                status="idle", dispatched_at__isnull=False
            ).exists(),
            240,
            "the devices in flight to finish",
        )
        passes = driver_passes(stack)
        wait_for(lambda: driver_passes(stack) >= passes + 2, 60, "two driver passes")
        batch.refresh_from_db()
        return batch

    options = {
        "remote_dir": shared_dir,
        "tool_path": "uxfp",
        "upgrade_timeout": 60,
        "reboot_timeout": 10,
        "progress_interval": 1,
    }
    rollout = dict(
        canary_size=BAD_CANARY,
        max_concurrent=BAD_LIMIT,
        failure_threshold=20,
        failure_threshold_minimum=minimum,
    )
    t0 = time.monotonic()
    batch = create_batch(
        build,
        org,
        device_ids=[str(device.pk) for _, device in fleet],
        upgrade_options=options,
        **rollout,
    )
    batch = settled(batch)
    first = touched()
    print(
        f"  stopped after {time.monotonic() - t0:.1f}s: {first} of {count} routers "
        f"ran the tool; reason: {batch.rollout_reason}"
    )
    check(
        batch.rollout_state == "stopped" and first <= BAD_CANARY,
        f"a bad image stops at the canary: {first} of {count} routers ran the "
        f"tool (canary {BAD_CANARY}, limit {BAD_LIMIT})",
    )
    check(
        "stream is for FN990A40, device is FN990A28" in batch.rollout_reason,
        f"the stop reason carries the tool's own error: {batch.rollout_reason!r}",
    )

    # the operator resumes anyway: wave 2 runs until the threshold stops it
    resume_batch(batch)
    t0 = time.monotonic()
    batch = settled(batch)
    after_resume = touched() - first
    operations = ModemUpgradeOperation.objects.filter(batch=batch)
    deciding = decided_by(batch, operations)
    started_late = [
        op
        for op in operations.filter(started_at__gt=deciding.finished_at)
        if flashes(by_device[op.device_id])
    ]
    print(
        f"  resumed, stopped again after {time.monotonic() - t0:.1f}s: "
        f"{after_resume} more routers ran the tool; reason: {batch.rollout_reason}"
    )
    # the threshold's own reach: the devices finished when it fires, and
    # those upgrading then; none may start after the deciding failure
    check(
        batch.rollout_state == "stopped"
        and not started_late
        and after_resume <= max(minimum, 1) + BAD_LIMIT - 1,
        f"after a resume: {after_resume} more routers ran the tool, none started "
        f"after the deciding failure ({deciding.device.name}; limit {BAD_LIMIT})",
    )

    # the failed devices retried as a new batch with the same rollout
    retry = retry_failed(batch)
    before_retry = {pk: flashes(router) for pk, router in by_device.items()}
    t0 = time.monotonic()
    retry = settled(retry)
    retried = sum(
        1 for pk, router in by_device.items() if flashes(router) > before_retry[pk]
    )
    retry_devices = ModemUpgradeOperation.objects.filter(batch=retry).count()
    print(
        f"  retry of {retry_devices} devices stopped after "
        f"{time.monotonic() - t0:.1f}s: {retried} routers ran the tool again"
    )
    check(
        retry.rollout_state == "stopped" and retried <= BAD_CANARY,
        f"retrying the failed devices: {retried} of {retry_devices} routers ran "
        f"the tool again (canary {BAD_CANARY})",
    )
    print(
        f"  routers that ran the bad image: {touched()} of {count} "
        f"(canary {first}, after resume {after_resume}, retry {retried})"
    )


NO_SERVICE_FLEET = 4


def canary_log(operation):
    operation.refresh_from_db()
    return operation.log


PREVIOUS_VERSION = "M0R.010000-B020"  # what new_router_device's modems run


def no_service_rollout(stack, router_device):
    """Issue 22: a build whose data session never comes up (the emulator's
    ``data_broken_firmware``), to 4 routers with canary 1, health
    verification (data session on wwan, 127.0.0.1 pinged through it),
    remediation and the re-flash of the previous build allowed."""
    from device.firmware import write_firmware_stream
    from django.core.files import File

    from openwisp_modem_upgrader.batch import create_batch
    from openwisp_modem_upgrader.tests import (
        ModemBatchUpgradeOperation,
        ModemUpgradeOperation,
        TestModemUpgraderMixin,
    )

    count = NO_SERVICE_FLEET
    print(
        f"8. a build breaking data on {count} routers: canary 1, health "
        "verification, remediation, re-flash of the previous build"
    )
    restart_racing_workers(stack, "noservice")
    factory = TestModemUpgraderMixin()
    org = factory._get_org()
    broken = "M0R.010400-B040"
    fleet = [router_device(70 + i) for i in range(count)]
    shared_dir = os.path.join(stack.tmp, "noservice-fleet")
    for router, _ in fleet:
        router.mount_tmpfs(shared_dir, 8 * 1024)
        router.set_modem(
            flash_duration=0.5, reboot_delay=0.5, data_broken_firmware=[broken]
        )
    category = factory._create_category(name="no service rollout")
    builds = {}
    for version in (broken, PREVIOUS_VERSION):
        path = os.path.join(stack.tmp, f"{version}.bin")
        write_firmware_stream(path, version, model="FN990A28", size=64 * 1024)
        builds[version] = factory._create_build(
            version=version, modem_model="FN990A28", category=category
        )
        with open(path, "rb") as stream:
            factory._create_image(
                build=builds[version], file=File(stream, name=f"{version}.bin")
            )
    options = {
        "remote_dir": shared_dir,
        "tool_path": "uxfp",
        "upgrade_timeout": 60,
        "reboot_timeout": 10,
        "progress_interval": 1,
        "data_interface": "wwan",
        "reachability_target": "127.0.0.1",
        "service_timeout": 6,
        "remediation": True,
        "reflash_previous": True,
    }
    t0 = time.monotonic()
    batch = create_batch(
        builds[broken],
        org,
        device_ids=[str(device.pk) for _, device in fleet],
        upgrade_options=options,
        canary_size=1,
        max_concurrent=2,
        failure_threshold=20,
        failure_threshold_minimum=2,
    )
    operations = ModemUpgradeOperation.objects.filter(batch=batch)
    canary = wait_for(
        lambda: operations.filter(status="no-service").first(),
        240,
        "the canary to end without service",
    )
    linked = wait_for(
        lambda: ModemUpgradeOperation.objects.filter(
            remediation_of=canary, status__in=["success", "failed", "no-service"]
        ).first()
        or "no re-flash of the previous build" in canary_log(canary),
        300,
        "the re-flash of the previous build",
    )
    check(
        linked is not True,
        f"a linked re-flash started: {canary_log(canary).splitlines()[-1]!r}",
    )
    batch = ModemBatchUpgradeOperation.objects.get(pk=batch.pk)
    elapsed = time.monotonic() - t0
    by_device = {device.pk: router for router, device in fleet}
    canary_router = by_device[canary.device_id]
    others = [router for pk, router in by_device.items() if pk != canary.device_id]
    print(
        f"  after {elapsed:.1f}s: canary {canary.device.name} {canary.status}, "
        f"re-flash {linked.status}; batch {batch.rollout_state}: "
        f"{batch.rollout_reason}"
    )
    print(f"  canary: {canary.log.strip().splitlines()[-2]}")
    check(
        "flashed, service not restored: no data session (wwan is down)" in canary.log
        and "remediation: restart the interface wwan" in canary.log,
        "the canary's new build is verified without service, after a "
        "remediation that did not help",
    )
    check(
        batch.rollout_state == "stopped"
        and sum(1 for router in others if flashes(router)) == 0,
        f"the rollout stops at the canary: none of the other {count - 1} "
        "routers ran the tool",
    )
    check(
        linked.status == "success"
        and "version and service verified" in linked.log
        and canary_router.modem_state()["firmware"] == PREVIOUS_VERSION
        and flashes(canary_router) == 2,
        f"the canary flashed back to {PREVIOUS_VERSION} by a linked operation, "
        f"its service verified ({linked.status})",
    )


def decided_by(batch, operations):
    """The failure that stopped ``batch``: the reason names its device."""
    for operation in operations.filter(status__in=["failed", "aborted"]).order_by(
        "-finished_at"
    ):
        if operation.device.name in batch.rollout_reason:
            return operation
    # no device named (older reasons): the latest failure
    return operations.filter(status__in=["failed", "aborted"]).latest("finished_at")


# scenario 7: transfers capped so that they overlap, and cut by bytes
THREADED_ROUTERS = 4
THREADED_RATE = 128 * 1024  # bytes/s: a 2 MiB image takes 16 s
# the killed worker's operations are retried once silent this long (the
# live transfers record progress every second)
THREADED_STUCK_TIMEOUT = "15"


def child_pids(pid):
    """Processes whose parent is ``pid``."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # the command may hold spaces: the parent follows its ")"
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(entry))
    return children


def cut_link(router):
    """Every SSH session of the router dies at once (its uplink dropped):
    dropbear's per-connection processes, not its listener."""
    for pid in child_pids(router._dropbear.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def thread_pool_transfers(stack, router_device, image, options, Operation):
    from openwisp_modem_upgrader.tests import DeviceModemFirmware
    from openwisp_modem_upgrader.upgrade import start_upgrade

    count = THREADED_ROUTERS
    print(f"7. one worker process on threads carries {count} transfers at once")
    for name, process in list(stack.processes.items()):
        if name.startswith("worker") and process.poll() is None:
            stack.kill(name)
    env = {"MODEM_STUCK_OPERATION_TIMEOUT": THREADED_STUCK_TIMEOUT}
    worker = stack.start_worker("worker-threads-1", env=env, threads=8)
    if not any(
        name.startswith("beat") and process.poll() is None
        for name, process in stack.processes.items()
    ):
        stack.start_beat("beat-threads")
    fleet = [router_device(60 + i) for i in range(count)]
    size = image.file.size
    operations = []
    for router, device in fleet:
        router.set_modem(flash_duration=0.5, reboot_delay=0.5)
        DeviceModemFirmware.objects.filter(device=device).update(
            modem_firmware_version="M0R.010000-B020"
        )
        operations.append(
            start_upgrade(
                device,
                image,
                dict(options(router), max_transfer_rate=THREADED_RATE),
            )
        )

    def held(router):
        path = os.path.join(
            router.tmp_dir, "openwisp-modem-upgrader", f"{image.sha256}.bin"
        )
        return os.path.getsize(path) if os.path.exists(path) else 0

    def all_partial(minimum=1):
        sizes = [held(router) for router, _ in fleet]
        return sizes if all(minimum <= each < size for each in sizes) else None

    sizes = wait_for(all_partial, 120, "every router to be receiving its image")
    check(
        not child_pids(worker.pid),
        f"one worker process (no pool process) sends {count} images at once: "
        f"the routers hold {sizes} of {size} bytes",
    )
    # a link drop, by bytes: the retry continues from what the router holds
    cut_router, _ = fleet[0]
    cut_operation = operations[0]
    cut_at = wait_for(
        lambda: held(cut_router) >= size // 4 and held(cut_router),
        120,
        "a quarter of the image on the first router",
    )
    cut_link(cut_router)
    cut_log = wait_for(
        lambda: held(cut_router) > cut_at
        and resume_offsets(Operation.objects.get(pk=cut_operation.pk).log)
        and Operation.objects.get(pk=cut_operation.pk).log,
        120,
        "the first router's transfer to resume after the cut",
    )
    # (dropbear's SSH window here is the whole image: the server cannot
    # know what arrived, so the drop uses an attempt; the router's copy
    # tells the retry)
    check(
        resume_offsets(cut_log)[0] >= cut_at,
        f"the link cut at {cut_at} bytes: the retry continued from byte "
        f"{resume_offsets(cut_log)[0]} of the router's copy",
    )
    # the worker dies while every router holds part of its image
    wait_for(
        lambda: all_partial(minimum=size // 4),
        120,
        "a quarter of the image on every router",
    )
    stack.kill("worker-threads-1")
    killed_at = time.monotonic()
    at_kill = [held(router) for router, _ in fleet]
    print(f"  worker killed with SIGKILL; the routers held {at_kill} bytes")
    check(
        sum(0 < each < size for each in at_kill) >= count - 1,
        "killed mid-transfer: the routers hold partial images",
    )
    time.sleep(max(0.0, killed_at + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
    stack.start_worker("worker-threads-2", env=env, threads=8)
    ids = [operation.pk for operation in operations]

    def finished():
        rows = Operation.objects.filter(pk__in=ids).exclude(
            status__in=["in-progress", "idle"]
        )
        return list(rows) if rows.count() == count else None

    done = wait_for(finished, 240, "the new worker to finish the upgrades")
    check(
        all(op.status == "success" for op in done),
        f"every upgrade succeeded: {[op.status for op in done]}",
    )
    done.sort(key=lambda op: ids.index(op.pk))
    resumed_from = [resume_offsets(op.log) for op in done]
    # the last resume of each router continued at least what it held when
    # the worker died: its copy was read and continued, not sent again
    check(
        all(
            offsets and offsets[-1] >= held_at_kill
            for offsets, held_at_kill in zip(resumed_from, at_kill)
        ),
        f"after the killed worker each router's copy was continued from "
        f"{[offsets[-1] if offsets else None for offsets in resumed_from]} "
        f"bytes (held at the kill: {at_kill})",
    )
    check(
        all(flashes(router) == 1 for router, _ in fleet),
        "each modem was flashed exactly once",
    )


def resume_offsets(log):
    """The offsets the operation's transfers resumed from, in order."""
    return [
        int(offset)
        for offset in re.findall(
            r"resuming the transfer: the router holds the first (\d+) bytes", log
        )
    ]


if __name__ == "__main__":
    main()
