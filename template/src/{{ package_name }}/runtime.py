"""Kept for handlers.py files written before the author API moved to api.py.

This file follows the template. Such handlers import `InboundEvent` and `PluginContext`
from here; new code imports everything from api.py.
"""

from .api import InboundEvent, PluginContext

__all__ = ["InboundEvent", "PluginContext"]
