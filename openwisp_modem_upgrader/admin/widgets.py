from django import forms


class ImageSelect(forms.Select):
    """Select of firmware images telling the page each image's upgrader type,
    so that only the matching options are shown."""

    def create_option(self, name, value, label, selected, index, **kwargs):
        option = super().create_option(name, value, label, selected, index, **kwargs)
        image = getattr(value, "instance", None)
        if image is not None:
            option["attrs"]["data-upgrader-type"] = image.type
        return option
