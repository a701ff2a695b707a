"""Progress reports sent by the routers themselves.

Authenticated like the rest of OpenWISP's device-facing endpoints: the
``key`` query parameter must be the key of the operation's device (the key
its OpenWISP agent already uses). Reports are replayed by the router after a
link loss, so each carries the journal ``seq`` and duplicates are ignored.
"""

import hmac

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..base.models import TERMINAL_STATUSES, OperationStatus
from ..scheduler import follow_now
from ..swapper import load_model
from ..upgrade import (
    finish_operation,
    journal_seq_plausible,
    record_journal,
    record_progress,
)
from .parsers import DeviceReportJSONParser

FAILURE_STATUSES = set(TERMINAL_STATUSES) - {OperationStatus.SUCCESS}
MAX_LOG_LENGTH = 64 * 1024
DEVICE_STATUSES = (
    OperationStatus.IN_PROGRESS,
    OperationStatus.SUCCESS,
    OperationStatus.FAILED,
    OperationStatus.ABORTED,
)


class DeviceReportSerializer(serializers.Serializer):
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
            applied = record_journal(
                pk, report["seq"], lines, report["progress_percent"]
            )
        else:
            applied = record_progress(
                pk, progress=report["progress_percent"], message=report["log"]
            )
        if report["status"] in FAILURE_STATUSES:
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


device_report = DeviceReportView.as_view()
