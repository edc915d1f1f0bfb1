"""The regdb client: `regdb registries|health|hooks|watch`, over the HTTP API only.

http.py the HTTP layer, documents.py reading files and options, commands.py and bulk.py and
watch.py the commands, render.py the output, parsers.py their options. Nothing here imports
Redis: the admin tools that do (fsck, export, import) live apart.
"""

from regdb.client.parsers import add_parsers

__all__ = ["add_parsers"]
