import os

from django.contrib.auth import get_permission_codename
from django.http import HttpResponse, HttpResponseRedirect
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header
from private_storage.views import PrivateStorageDetailView

from ..image_stream import is_object_storage
from ..swapper import load_model


class ModemFirmwareDownloadView(PrivateStorageDetailView):
    """Streams an image to staff of its organization (or any superuser).

    Images on object storage are not streamed through the web process: once
    the organization is checked, the answer redirects to a short-lived
    presigned URL of the object.
    """

    model = load_model("ModemFirmwareImage")
    model_file_field = "file"
    slug_field = "file"
    slug_url_kwarg = "path"
    raise_exception = True

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return HttpResponse(status=401)
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        return super().get_queryset().select_related("build__category")

    def serve_file(self, private_file):
        storage = private_file.storage
        if not is_object_storage(storage):
            return super().serve_file(private_file)
        filename = os.path.basename(private_file.relative_name)
        # a plain django-storages S3 storage presigns url() itself
        presign = getattr(storage, "presigned_url", storage.url)
        url = presign(
            private_file.relative_name,
            parameters={
                "ResponseContentDisposition": content_disposition_header(True, filename)
            },
        )
        response = HttpResponseRedirect(url)
        # the presigned URL must not outlive this answer in a cache
        add_never_cache_headers(response)
        return response

    def can_access_file(self, private_file):
        user = private_file.request.user
        if user.is_superuser:
            return True
        opts = self.model._meta
        permission = f"{opts.app_label}.{get_permission_codename('view', opts)}"
        organization_id = self.object.build.category.organization_id
        # images of shared categories are readable by any organization's staff
        if organization_id is None:
            return user.is_staff and user.has_perm(permission)
        return (
            user.is_staff
            and user.has_perm(permission)
            and user.is_manager(organization_id)
        )


modem_firmware_download = ModemFirmwareDownloadView.as_view()
