"""The pre-flight gate and the post-flash service verification of a
wrapper upgrade, through ``modem-health.sh`` (decisions in ``health.py``).

* ``preflight()``: before anything is sent, one reading stored as the
  baseline; a refusal is "not started: <reason>" (read again until the
  deadline, ``engine._retry_gate``);
* ``verify_service()``: after the version read-back, one reading per
  follow-up until the service is back or ``service_timeout`` passed; with
  ``remediation`` the cheap steps are tried once on the way.
"""

import posixpath
import time

from ..device_contract import GarbageOutput
from ..exceptions import (
    PreflightRefused,
    RecoverableModemFailure,
    ServiceNotRestored,
)
from ..health import (
    HEALTH_SCRIPT,
    REGISTERED,
    gate_refusal,
    health_arguments,
    parse_health,
    remediation_steps,
    service_problems,
    summary,
)


class HealthChecks:
    @classmethod
    def outcome_timeout_for(cls, options):
        timeout = super().outcome_timeout_for(options)
        if options.get("service_verification", True):
            timeout += int(options.get("service_timeout", 180))
        return timeout

    def read_health(self, remediation=()):
        script = posixpath.join(self.paths["scripts"], HEALTH_SCRIPT)
        argv = health_arguments(
            script, self.operation.usb_path, self.options, remediation
        )
        output, _ = self.shell.run(argv, timeout=120)
        return parse_health(output)

    def preflight(self):
        options = self.options
        if not (options["preflight_checks"] or options["service_verification"]):
            return
        try:
            reading = self.read_health()
        except GarbageOutput as error:
            # says nothing of the modem (a cut or garbled answer): retried
            # within the attempts, not read again until the deadline
            raise RecoverableModemFailure(
                f"not started: unreadable health reading ({error})"
            )
        self.recorder.health("baseline", reading)
        self.log(f"pre-flight reading: {summary(reading)}")
        if not options["preflight_checks"]:
            return
        reason = gate_refusal(reading, options)
        if reason:
            raise PreflightRefused(
                f"not started: {reason} (pre-flight gate; nothing was sent to the "
                "router and the modem is untouched)"
            )
        self.log("pre-flight gate passed")

    def verify_service(self):
        """The success message once the service is back; ``None`` while it
        may still come back; ``ServiceNotRestored`` past the time allowed."""
        options = self.options
        if not options["service_verification"]:
            return "upgrade successful"
        state = self.state
        since = state.setdefault("service_since", time.time())
        elapsed = time.time() - since
        timeout = options["service_timeout"]
        try:
            reading = self.read_health()
        except (RecoverableModemFailure, GarbageOutput) as error:
            if elapsed > timeout:
                raise ServiceNotRestored(
                    "flashed, service not restored: the service could not be "
                    f"read within {timeout}s ({error})"
                )
            return None
        baseline = (self.operation.health or {}).get("baseline")
        problems = service_problems(reading, baseline, options)
        if not problems:
            self.recorder.health("after", reading)
            self.log(f"service verified: {summary(reading)}", 100)
            if state.get("remediated"):
                return "upgrade successful: service restored by the remediation"
            return "upgrade successful: version and service verified"
        if state.get("problems") != problems:
            state["problems"] = problems
            self.log(f"service not restored yet: {'; '.join(problems)}")
        if (
            options["remediation"]
            and not state.get("remediated")
            and self.worth_remediating(reading, baseline, elapsed, timeout)
        ):
            self.remediate(reading, baseline)
            return None
        if elapsed < timeout:
            return None
        self.recorder.health("after", reading)
        raise ServiceNotRestored(
            f"flashed, service not restored: {'; '.join(problems)} "
            f"({timeout}s after the version read-back"
            + ("; the remediation did not help" if state.get("remediated") else "")
            + ")"
        )

    @staticmethod
    def worth_remediating(reading, baseline, elapsed, timeout):
        """Now, when the network is there but the session is not (or the
        APN was lost); otherwise after half the time allowed."""
        apn_lost = bool(baseline and baseline.get("apn") != reading["apn"])
        return (
            apn_lost or reading["registration"] in REGISTERED or elapsed >= timeout / 2
        )

    def remediate(self, reading, baseline):
        self.state["remediated"] = True
        steps = remediation_steps(reading, baseline, self.options)
        if not steps:
            self.log("remediation: no step applies to this modem")
            return
        for name, _args in steps:
            self.log(f"remediation: {name}")
        try:
            after = self.read_health(remediation=steps)
        except (RecoverableModemFailure, GarbageOutput) as error:
            self.log(f"remediation: the router did not answer ({error})")
            return
        self.recorder.health(
            "remediation", {"steps": [name for name, _ in steps], "reading": after}
        )
        self.log(
            f"remediation done ({after['actions'] or 'no action'}): {summary(after)}"
        )
