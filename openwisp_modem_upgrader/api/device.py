"""Progress reports sent by the routers themselves.

Authenticated like the rest of OpenWISP's device-facing endpoints: the
``key`` query parameter must be the key of the operation's device (the key
its OpenWISP agent already uses). Reports are replayed by the router after a
link loss, so each carries the journal ``seq`` and duplicates are ignored.

Thousands of routers report every few seconds, so the usual report (valid,
in progress, records that follow the last applied one) takes a fast path:
no Django REST framework, one conditional UPDATE that also checks the key.
Anything else (a replay, an error to explain, a failure to record) goes
through ``DeviceReportView``, which answers exactly as before.
"""

import hmac
import json
import re
from functools import partial

from django.db import InterfaceError, OperationalError, connections, router
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..device_contract import REPORT_FIELDS, REPORT_STATES
from ..statuses import (
    ROUTINE_REPORT_STATUSES,
    UNSUCCESSFUL_STATUSES,
    OperationStatus,
)
from ..swapper import load_model
from ..upgrade import (
    finish_operation,
    follow_now,
    journal_seq_plausible,
    record_journal,
    record_new_journal,
    record_progress,
)
from .parsers import MAX_DEVICE_REPORT_BODY, DeviceReportJSONParser

MAX_LOG_LENGTH = 64 * 1024
# the states a router reports (the router contract)
DEVICE_STATUSES = tuple(OperationStatus(state) for state in REPORT_STATES)


class DeviceReportSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderDeviceReport"

    progress_percent = serializers.IntegerField(min_value=0, max_value=100)
    status = serializers.ChoiceField(choices=DEVICE_STATUSES)
    log = serializers.CharField(
        max_length=MAX_LOG_LENGTH, allow_blank=True, required=False, default=""
    )
    seq = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)

    def validate(self, data):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                _("Unknown fields: %(fields)s") % {"fields": ", ".join(sorted(unknown))}
            )
        return data


class DeviceReportView(APIView):
    parser_classes = (DeviceReportJSONParser,)
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def post(self, request, pk):
        key = request.query_params.get("key", "")
        Operation = load_model("ModemUpgradeOperation")
        operation = (
            Operation.objects.filter(pk=pk)
            .values("status", "device__key", "device_seq")
            .first()
        )
        if operation is None:
            return Response({"detail": _("Not found.")}, status=404)
        # bytes: compare_digest refuses non-ASCII str with a TypeError (a 500)
        expected = str(operation["device__key"]).encode()
        if not key or not hmac.compare_digest(expected, key.encode("utf-8", "replace")):
            return Response(
                {"detail": _("Wrong or missing device key.")},
                status=status.HTTP_403_FORBIDDEN,
            )
        if operation["status"] != OperationStatus.IN_PROGRESS:
            return Response(
                {
                    "detail": _("This operation is %(status)s.")
                    % {"status": operation["status"]}
                },
                status=status.HTTP_409_CONFLICT,
            )
        serializer = DeviceReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = serializer.validated_data
        if "seq" in report:
            # one journal record per line (the device contract)
            lines = report["log"].split("\n") if report["log"] else []
            first_seq = report["seq"] - len(lines) + 1
            if not journal_seq_plausible(operation["device_seq"], first_seq):
                return Response(
                    {
                        "seq": [
                            _(
                                "The router's journal cannot have produced this "
                                "seq: the last applied record is %(seq)s."
                            )
                            % {"seq": operation["device_seq"]}
                        ]
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
            if report["seq"] <= operation["device_seq"]:
                # a replay: nothing to write
                applied = False
            else:
                applied = record_journal(
                    pk, report["seq"], lines, report["progress_percent"]
                )
        else:
            applied = record_progress(
                pk, progress=report["progress_percent"], message=report["log"]
            )
        if report["status"] in UNSUCCESSFUL_STATUSES:
            finish_operation(
                pk,
                report["status"],
                _("failure reported by the router"),
                clean_up=True,
            )
        elif report["status"] == OperationStatus.SUCCESS:
            # only recorded: the next follow-up finishes the operation once
            # the server has read the modem's version itself
            follow_now(pk)
        return Response({"applied": applied, "status": report["status"]})

    patch = post


# what DRF's CharField refuses in the log (its error messages: slow path)
_REFUSED_LOG_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# compared by the database on the fast path; other keys (NUL characters
# PostgreSQL refuses...) are compared in Python on the general path
_PLAIN_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")
_general_view = DeviceReportView.as_view()


def _refuse_constant(name):
    raise ValueError(name)


def _valid_int(value, low, high):
    # DRF also takes "5" and 5.0: those go to the general path
    return type(value) is int and low <= value <= high


def _fast_report(request):
    """The report when it is the usual case, validated as
    ``DeviceReportSerializer`` would; ``None`` for anything else."""
    if request.content_type != "application/json" or request.content_params:
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= MAX_DEVICE_REPORT_BODY:
        return None
    try:
        # decoded first: json.loads would also guess UTF-16, DRF does not
        report = json.loads(
            request.body.decode("utf-8"), parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError):
        return None
    if type(report) is not dict or not report.keys() <= REPORT_FIELDS:
        return None
    log = report.get("log", "")
    if (
        report.get("status") not in ROUTINE_REPORT_STATUSES
        or not _valid_int(report.get("progress_percent"), 0, 100)
        or not _valid_int(report.get("seq"), 1, 2**31 - 1)
        or type(log) is not str
    ):
        return None
    # as DRF's CharField: whitespace trimmed, then the length checked
    log = log.strip()
    if len(log) > MAX_LOG_LENGTH or _REFUSED_LOG_CHARACTERS.search(log):
        return None
    report["log"] = log
    return report


def _record_without_health_check(pk, report, lines, key):
    """``record_new_journal`` without ``CONN_HEALTH_CHECKS``' round trip
    before it (that ``SELECT 1`` cost as much as the report): a persistent
    connection that died meanwhile (PostgreSQL restarted) fails the UPDATE
    instead, and the report is sent once more on a new connection. The
    UPDATE is conditional on the journal's seq, so a report that had been
    applied before the connection died is a replay the second time."""
    database = connections[router.db_for_write(load_model("ModemUpgradeOperation"))]
    record = partial(
        record_new_journal, pk, report["seq"], lines, report["progress_percent"], key
    )
    if database.in_atomic_block:  # a transaction of the caller's: not ours
        return record()
    database.health_check_done = True
    try:
        return record()
    except (InterfaceError, OperationalError):
        database.close()
        return record()


@csrf_exempt
def device_report(request, pk):
    report = _fast_report(request)
    key = request.GET.get("key", "")
    if report is not None and _PLAIN_KEY.fullmatch(key):
        lines = report["log"].split("\n") if report["log"] else []
        if _record_without_health_check(pk, report, lines, key):
            if report["status"] == OperationStatus.SUCCESS:
                # the next follow-up verifies the modem and finishes it
                follow_now(pk)
            body = {"applied": True, "status": report["status"]}
            return HttpResponse(
                json.dumps(body, separators=(",", ":")),
                content_type="application/json",
            )
    return _general_view(request, pk=pk)
