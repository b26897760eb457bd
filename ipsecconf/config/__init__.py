"""Config layer: YAML files (with Jinja2 templates and secret references) to the model.

The public entry point is :func:`load`.
"""

from ipsecconf.config.loader import LoadResult, Secrets, load

__all__ = ["LoadResult", "Secrets", "load"]
