"""REST API of firmware policies (docs/user/rest-api.rst): list, create,
read, change (``paused`` pauses or resumes its enrollments and rollout) and
delete, with the conventions of the other endpoints (openwisp-users
mixins, organization isolation)."""

from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from rest_framework import generics, serializers

from ..policy import POLICY_ROLLOUT_FIELDS, pause_policy, resume_policy
from ..swapper import load_model
from .serializers import TIMESTAMPS, BaseSerializer
from .views import ProtectedAPIMixin

ModemFirmwarePolicy = load_model("ModemFirmwarePolicy")


class FirmwarePolicySerializer(BaseSerializer):
    rollout = serializers.UUIDField(
        source="batch_id",
        read_only=True,
        allow_null=True,
        help_text=_("the mass upgrade the policy enrolls modems into"),
    )
    modem_model = serializers.CharField(source="build.modem_model", read_only=True)

    def filter_fields(self):
        # a build belongs to an organization through its category (or is
        # shared), which the generic filter cannot follow: done here
        user = self.context["request"].user
        if user.is_superuser or user.is_anonymous:
            return
        managed = user.organizations_managed
        organization = self.fields["organization"]
        organization.allow_null = False
        organization.queryset = organization.queryset.filter(pk__in=managed)
        for name in ("group", "location"):
            field = self.fields[name]
            field.queryset = field.queryset.filter(organization__in=managed)
        build = self.fields["build"]
        build.queryset = build.queryset.filter(
            Q(category__organization__in=managed)
            | Q(category__organization__isnull=True)
        )

    class Meta:
        ref_name = "ModemUpgraderFirmwarePolicy"
        model = ModemFirmwarePolicy
        fields = (
            (
                "id",
                "organization",
                "name",
                "build",
                "modem_model",
                "group",
                "location",
                "carrier",
                "paused",
                "upgrade_options",
            )
            + POLICY_ROLLOUT_FIELDS
            + ("rollout", "last_pass_at", "last_enrolled", "last_pass_note")
            + TIMESTAMPS
        )
        read_only_fields = (
            "last_pass_at",
            "last_enrolled",
            "last_pass_note",
        ) + TIMESTAMPS
        extra_kwargs = {"window_timezone": {"trim_whitespace": False}}


class FirmwarePolicyMixin(ProtectedAPIMixin):
    queryset = ModemFirmwarePolicy.objects.select_related("build")
    serializer_class = FirmwarePolicySerializer
    ordering_fields = ("name", "created", "modified")
    ordering = ("name",)


class FirmwarePolicyListView(FirmwarePolicyMixin, generics.ListCreateAPIView):
    pass


class FirmwarePolicyDetailView(
    FirmwarePolicyMixin, generics.RetrieveUpdateDestroyAPIView
):
    def perform_update(self, serializer):
        was_paused = serializer.instance.paused
        policy = serializer.save()
        if policy.paused and not was_paused:
            pause_policy(policy)
        elif was_paused and not policy.paused:
            resume_policy(policy)


firmware_policy_list = FirmwarePolicyListView.as_view()
firmware_policy_detail = FirmwarePolicyDetailView.as_view()
