"""The image a router downloads itself (the "pull" transfer mode).

Authenticated like the progress reports (``api/device.py``): the ``key``
query parameter must be the key of the operation's device. A router gets
only the image of its own operation, while that operation is in progress
and set to pull; anything else is a 4xx, never a 5xx. Local images are
streamed from the requested byte on (``Range: bytes=N-``, 206), so a
download cut by the cellular link continues where it stopped; images in
object storage are a redirect to a short-lived presigned URL, so the web
process sends no bytes at all.
"""

import hmac
import re

from django.db.models import F, Q
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.views.decorators.http import require_safe

from ..image_stream import is_object_storage, open_image
from ..statuses import OperationStatus, TransferMode
from ..swapper import load_model
from ..upgraders import get_upgrader_class

CHUNK_SIZE = 64 * 1024
# one range, "first-" or "first-last" (what curl -C - and wget -c send)
_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{0,19})")


def _refuse(status, detail):
    return HttpResponse(detail + "\n", status=status, content_type="text/plain")


def _operation(pk):
    Operation = load_model("ModemUpgradeOperation")
    return (
        Operation.objects.filter(pk=pk)
        # an image shared with every organization, or the device's own
        .filter(
            Q(image__build__category__organization=None)
            | Q(image__build__category__organization=F("device__organization"))
        )
        .select_related("image", "device")
        .only(
            "status",
            "upgrade_options",
            "device__key",
            "image__type",
            "image__file",
            "image__size",
            "image__sha256",
        )
        .first()
    )


@require_safe
def device_image(request, pk):
    operation = _operation(pk)
    if operation is None or operation.image is None or not operation.image.file:
        return _refuse(404, "No image for this operation.")
    key = request.GET.get("key", "")
    # bytes: compare_digest refuses non-ASCII str with a TypeError (a 500)
    expected = str(operation.device.key).encode()
    if not key or not hmac.compare_digest(expected, key.encode("utf-8", "replace")):
        return _refuse(403, "Wrong or missing device key.")
    if operation.status != OperationStatus.IN_PROGRESS:
        return _refuse(409, f"This operation is {operation.status}.")
    image = operation.image
    if _transfer_mode(image.type, operation.upgrade_options) != TransferMode.PULL:
        return _refuse(409, "This operation does not download its image.")
    if is_object_storage(image.file.storage):
        return _presigned_redirect(image.file)
    return _serve_range(request, image)


def _transfer_mode(upgrader_type, options):
    """The operation's mode as its upgrader runs it: the option, else the
    schema's default (the setting)."""
    try:
        upgrader_class = get_upgrader_class(upgrader_type)
    except LookupError:
        return None
    return upgrader_class.get_options(options).get("transfer_mode")


def _presigned_redirect(field_file):
    storage = field_file.storage
    sign = getattr(storage, "presigned_url", storage.url)
    return HttpResponseRedirect(sign(field_file.name))


def _serve_range(request, image_row):
    size = image_row.size
    first, last = 0, size - 1
    header = request.headers.get("Range")
    if header is not None:
        match = _RANGE.fullmatch(header.strip())
        if match is None:
            return _unsatisfiable(size, "Only one range, bytes=first- or first-last.")
        first = int(match[1])
        if match[2]:
            last = min(int(match[2]), size - 1)
        if first >= size or first > last:
            return _unsatisfiable(size, "The range lies outside the image.")
    try:
        image = open_image(image_row.file, offset=first)
    except (OSError, ValueError):
        return _refuse(404, "The image file is missing.")
    length = last - first + 1
    response = StreamingHttpResponse(
        _chunks(image, length),
        status=206 if header is not None else 200,
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{image_row.sha256}"'
    if header is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


def _unsatisfiable(size, detail):
    response = _refuse(416, detail)
    response["Content-Range"] = f"bytes */{size}"
    return response


def _chunks(image, length):
    """``length`` bytes of ``image``, a chunk at a time; the file is closed
    when the response is, even when the router hangs up midway."""
    try:
        left = length
        while left > 0:
            chunk = image.read(min(CHUNK_SIZE, left))
            if not chunk:
                return  # the file shrank: the router's sha256 check refuses it
            left -= len(chunk)
            yield chunk
    finally:
        image.close()
