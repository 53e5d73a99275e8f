"""Backup tool adapters.  Add a tool: subclass base.Tool, register it in TOOLS."""

from .borg import Borg
from .restic import Restic
from .rustic import Rustic
from .vtool import Vtool

TOOLS = {t.name: t for t in (Vtool, Rustic, Restic, Borg)}
