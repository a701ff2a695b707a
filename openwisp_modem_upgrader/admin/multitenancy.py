from django.db.models import Q

from openwisp_users.multitenancy import MultitenantAdminMixin


class SharedObjectsAdminMixin(MultitenantAdminMixin):
    """Managers also see shared objects (no organization) but cannot edit them.

    ``organization_lookup`` is the path from the model to its organization.
    """

    organization_lookup = "organization"

    def get_queryset(self, request):
        qs = super(MultitenantAdminMixin, self).get_queryset(request)
        if request.user.is_superuser:
            return qs
        lookup = self.organization_lookup
        return qs.filter(
            Q(**{f"{lookup}__in": request.user.organizations_managed})
            | Q(**{f"{lookup}__isnull": True})
        )

    def _is_shared(self, obj):
        value = obj
        for part in self.organization_lookup.split("__"):
            value = getattr(value, f"{part}_id" if part == "organization" else part)
        return value is None

    def has_change_permission(self, request, obj=None):
        if obj is not None and not request.user.is_superuser and self._is_shared(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not request.user.is_superuser and self._is_shared(obj):
            return False
        return super().has_delete_permission(request, obj)
