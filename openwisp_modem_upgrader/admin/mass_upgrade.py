"""The "Mass-upgrade device modems" action: preview, filters, options,
rollout, confirm."""

import zoneinfo
from functools import lru_cache

import swapper
from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.utils import flatatt
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from ..base.models import ModemSelection
from ..batch import (
    ExclusionReason,
    add_unreachable_reasons,
    create_batch,
    modems_to_flash,
    not_detected_devices,
    preview_page,
)
from ..compatibility import check_build_for_batch
from ..estimate import preview_estimate
from ..rollout import wave_sizes
from ..rollout_display import ROLLOUT_FIELDS, clean_rollout_options
from ..swapper import load_model
from .inventory import may_detect, queue_detection_with_message
from .options import UpgradeOptionsFormMixin

Organization = swapper.load_model("openwisp_users", "Organization")
DeviceGroup = swapper.load_model("config", "DeviceGroup")
Location = swapper.load_model("geo", "Location")
Device = swapper.load_model("config", "Device")
ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")

PREVIEW_ROWS = 100


class PlainSelect(forms.Select):
    """A select whose options are written here, not by one template include
    each: the ~600 time zones took ~0.1 s of every preview page to render."""

    def render(self, name, value, attrs=None, renderer=None):
        selected = set(self.format_value(value))
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (key, " selected" if str(key) in selected else "", label)
                for key, label in self.choices
            ),
        )
        attrs = flatatt(self.build_attrs(self.attrs, attrs))
        return format_html('<select name="{}"{}>{}</select>', name, attrs, options)


class MassUpgradeForm(UpgradeOptionsFormMixin, forms.Form):
    organization = forms.ModelChoiceField(
        label=_("organization"), queryset=Organization.objects.none()
    )
    group = forms.ModelChoiceField(
        label=_("group"), queryset=DeviceGroup.objects.none(), required=False
    )
    location = forms.ModelChoiceField(
        label=_("location"), queryset=Location.objects.none(), required=False
    )
    from_version = forms.CharField(
        label=_("current modem firmware version"), max_length=64, required=False
    )
    modems = forms.TypedChoiceField(
        label=_("modems of each router"),
        choices=ModemSelection.choices,
        initial=ModemSelection.FIRST,
        # a plain link (compliance's "upgrade these devices") has none
        required=False,
        empty_value=ModemSelection.FIRST,
        help_text=ModemBatchUpgradeOperation._meta.get_field("modems").help_text,
    )
    # exactly these devices (e.g. "upgrade these devices" of a compliance row)
    device_ids = forms.ModelMultipleChoiceField(
        queryset=Device.objects.none(),
        required=False,
        widget=forms.MultipleHiddenInput,
    )

    def __init__(self, *args, build, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.build = build
        organizations = Organization.objects.filter(is_active=True)
        if not user.is_superuser:
            organizations = organizations.filter(pk__in=user.organizations_managed)
        if build.category.organization_id:
            organizations = organizations.filter(pk=build.category.organization_id)
        self.fields["organization"].queryset = organizations.order_by("name")
        if organizations.count() == 1:
            self.fields["organization"].initial = organizations.first().pk
        orgs = organizations.values("pk")
        self.fields["group"].queryset = DeviceGroup.objects.filter(
            organization__in=orgs
        ).order_by("name")
        self.fields["location"].queryset = Location.objects.filter(
            organization__in=orgs
        ).order_by("name")
        self.fields["device_ids"].queryset = Device.objects.filter(
            organization__in=orgs
        )
        self.upgrader_types = sorted(set(build.images.values_list("type", flat=True)))
        # one options object for every image of the build
        self.add_options_field(self.upgrader_types, single=True)
        self.fields.update(rollout_form_fields())

    @property
    def rollout_fields(self):
        return [self[name] for name in ROLLOUT_FIELDS]

    def clean(self):
        cleaned_data = super().clean()
        organization = cleaned_data.get("organization")
        for field in ("group", "location"):
            value = cleaned_data.get(field)
            if value and organization and value.organization_id != organization.pk:
                self.add_error(field, _("Choose one of the organization you selected."))
        devices = cleaned_data.get("device_ids")
        if devices and organization:
            if any(device.organization_id != organization.pk for device in devices):
                self.add_error(
                    None, _("The chosen devices belong to another organization.")
                )
        try:
            # a draft goes to a chosen test group only, never a whole fleet
            check_build_for_batch(self.build, cleaned_data.get("group"), devices)
        except ValidationError as error:
            self.add_batch_errors(error)
        self.cleaned_options = self.clean_options_for(self.upgrader_types)
        if all(name not in self.errors for name in ROLLOUT_FIELDS):
            try:
                clean_rollout_options(
                    ModemBatchUpgradeOperation(), self.rollout_options()
                )
            except ValidationError as error:
                self.add_batch_errors(error)
            self.clean_stage_ahead()
        return cleaned_data

    def clean_stage_ahead(self):
        """Staging ahead needs a window: said with the preview, not only
        at the confirmation."""
        batch = ModemBatchUpgradeOperation(
            upgrade_options=self.cleaned_options or {}, **self.rollout_options()
        )
        try:
            batch.clean_stage_ahead(batch)
        except ValidationError as error:
            self.add_batch_errors(error)

    def rollout_options(self):
        return {
            name: self.cleaned_data[name]
            for name in ROLLOUT_FIELDS
            if self.cleaned_data.get(name) not in (None, "")
        }

    def upgrade_options(self):
        return self.cleaned_options

    def filters(self):
        return {
            "group": self.cleaned_data.get("group"),
            "location": self.cleaned_data.get("location"),
            "from_version": self.cleaned_data.get("from_version", ""),
            "modems": self.cleaned_data.get("modems") or ModemSelection.FIRST,
            "device_ids": [
                str(device.pk) for device in self.cleaned_data.get("device_ids") or []
            ],
        }

    def add_batch_errors(self, error):
        """Errors of ``create_batch()`` attached to the fields they concern."""
        errors = error.message_dict if hasattr(error, "error_dict") else {}
        if not errors:
            errors = {"__all__": error.messages}
        for field, field_errors in errors.items():
            for message in field_errors:
                if field in self.fields:
                    self.add_error(field, message)
                else:
                    self.add_error(None, message)


def rollout_form_fields():
    """The batch's rollout fields, with the model's limits and help texts.

    The form is also bound from a plain link (compliance's "upgrade these
    devices"): an empty field, or "default", means the model's default.
    """
    fields = forms.fields_for_model(ModemBatchUpgradeOperation, fields=ROLLOUT_FIELDS)
    for name, field in fields.items():
        field.required = False
        if isinstance(field, forms.BooleanField):
            default = _("yes") if field.initial else _("no")
            fields[name] = forms.TypedChoiceField(
                label=field.label,
                help_text=field.help_text,
                choices=(
                    ("", format_lazy("{} ({})", _("default"), default)),
                    ("true", _("yes")),
                    ("false", _("no")),
                ),
                coerce=lambda value: value == "true",
                empty_value=None,
                required=False,
            )
        elif isinstance(field, forms.IntegerField):
            field.widget.attrs["placeholder"] = field.initial
    for name in ("scheduled_at", "deadline"):
        fields[name].widget = forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        )
        fields[name].help_text = format_lazy(
            "{} ({})", fields[name].help_text, _("server time zone")
        )
    for name in ("window_start", "window_end"):
        fields[name].widget = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    zone = fields["window_timezone"]
    fields["window_timezone"] = forms.ChoiceField(
        label=zone.label,
        choices=[("", format_lazy("{} ({})", _("default"), zone.initial))]
        + [(name, name) for name in _time_zones()],
        required=False,
        widget=PlainSelect,
    )
    return fields


@lru_cache(maxsize=None)
def _time_zones():
    """Read once per process: ``available_timezones()`` walks the tz
    database's files (~600 of them, 15 ms per page at 10,000 devices)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def preview(form):
    """Eligible and excluded devices for the form's filters (a few rows each)."""
    batch = form_batch(form)
    # the fleet evaluated once, for the counts and the shown rows
    counts, shown, excluded = preview_page(
        batch,
        (
            "pk",
            "name",
            "modem_firmware_version",
            "target_usb_path",
            "target_imei",
            "exclusion_reason",
        ),
        PREVIEW_ROWS,
    )
    chosen = modems_to_flash(batch, [row["pk"] for row in shown])
    for row in shown:
        row["modems_flashed"], row["modems_left_out"] = chosen.get(row["pk"], ([], []))
    for row in excluded:
        row["reason"] = ExclusionReason.labels.get(row["exclusion_reason"])
    add_unreachable_reasons(excluded)
    waves = wave_sizes(batch, counts["devices_count"])
    return {
        "devices": shown,
        **counts,
        "every_modem": batch.modems == ModemSelection.EVERY,
        "waves": waves,
        "expected_duration": preview_estimate(batch, counts, waves),
        "excluded": excluded,
        "chosen_devices_count": len(batch.device_ids),
        "preview_rows": PREVIEW_ROWS,
        "preview_ready": True,
    }


def form_batch(form):
    """The unsaved batch the form describes (what the preview shows)."""
    filters = {k: v for k, v in form.filters().items() if v}
    return ModemBatchUpgradeOperation(
        build=form.build,
        organization=form.cleaned_data["organization"],
        **filters,
        **form.rollout_options(),
    )


def detect_not_detected(request, form):
    """ "Detect these devices": queues detection of the preview's devices
    excluded as "modem not detected yet"."""
    if not may_detect(request.user):
        messages.error(request, _("You may not detect modems."))
        return
    queue_detection_with_message(request, not_detected_devices(form_batch(form)))


def mass_upgrade_view(model_admin, request, build_pk):
    build = get_object_or_404(
        model_admin.get_permitted_queryset(request).select_related("category"),
        pk=build_pk,
    )
    if not model_admin.has_mass_upgrade_permission(request):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    form = MassUpgradeForm(data or None, build=build, user=request.user)
    context = {}
    if form.is_bound and form.is_valid():
        if "detect" in request.POST:
            detect_not_detected(request, form)
        elif "confirm" in request.POST:
            try:
                batch = create_batch(
                    build,
                    form.cleaned_data["organization"],
                    form.upgrade_options(),
                    **form.filters(),
                    **form.rollout_options(),
                )
            except ValidationError as error:
                form.add_batch_errors(error)
            else:
                messages.success(request, _("The mass upgrade has started."))
                opts = batch._meta
                return HttpResponseRedirect(
                    reverse(
                        f"admin:{opts.app_label}_{opts.model_name}_change",
                        args=[batch.pk],
                    )
                )
        # after a refused Confirm too: the errors above the preview, and its
        # Confirm button to try again once they are fixed
        if form.cleaned_data.get("organization") is not None:
            context.update(preview(form))
    opts = model_admin.model._meta
    context.update(
        {
            **model_admin.admin_site.each_context(request),
            "title": _("Mass-upgrade device modems to %(build)s") % {"build": build},
            "build": build,
            "form": form,
            "opts": opts,
            "media": model_admin.media + form.media,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
    )
    return TemplateResponse(
        request, "admin/modem_upgrader/mass_upgrade_preview.html", context
    )
