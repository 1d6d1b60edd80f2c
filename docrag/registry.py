"""Named engine registries: every seam picks its engine by name.

Engines in docrag register with a decorator. Engines in other packages (or
at docrag's edge, like the Ray page engine) are plugins: an entry point in
their package's metadata names the factory, loaded the first time that name
is asked for, so the registry never imports a module above it.

>>> reg = Registry[object]("detector")
>>> @reg.register("dummy")
... def _make(**kw): return object()
>>> reg.names()
['dummy']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from docrag.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A map from engine names to factories, with errors that list the known names.

    Args:
        seam: What the engines are, for messages ("page engine").
        entry_points: An entry-point group (``docrag.page_engines``) whose
            entries are factories too: a package declares one in its
            ``pyproject.toml`` as ``[project.entry-points."docrag.page_engines"]
            ray = "docrag.integrations.ray:RayPages"``.
    """

    def __init__(self, seam: str, entry_points: str | None = None) -> None:
        self.seam = seam
        self.group = entry_points
        self._factories: dict[str, Callable[..., T]] = {}
        self._plugins: dict[str, EntryPoint] | None = None  # read from package metadata on first need

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.seam} engine {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._plugins is None:
            from importlib.metadata import entry_points

            # Scanning the installed packages' metadata costs a few milliseconds: once per process.
            self._plugins = {ep.name: ep for ep in entry_points(group=self.group)} if self.group else {}
        return self._plugins

    def names(self) -> list[str]:
        """The registered names and the plugins' names, sorted."""
        return sorted(set(self._factories) | set(self._entry_points()))

    def create(self, name: str, **kwargs: object) -> T:
        """Build the engine called ``name`` (a plugin's module is imported on first use).

        Raises:
            ConfigError: ``name`` is not registered; the message lists the known names.
        """
        factory = self._factories.get(name)
        if factory is None:
            plugin = self._entry_points().get(name)
            if plugin is None:
                known = ", ".join(self.names()) or "none"
                raise ConfigError(f"unknown {self.seam} {name!r}; known: {known}")
            factory = self._factories[name] = plugin.load()
        return factory(**kwargs)
