from django import template

from ..display import local_log as _local_log

register = template.Library()


@register.filter
def local_log(text):
    """An operation's log with the server's UTC times in the local zone."""
    return _local_log(text)
