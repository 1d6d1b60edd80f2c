"""Named engine registries: every seam picks its engine by name.

>>> reg = Registry[object]("detector")
>>> @reg.register("dummy")
... def _make(**kw): return object()
>>> reg.names()
['dummy']
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from docrag.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A map from engine names to factories, with errors that list the known names."""

    def __init__(self, seam: str) -> None:
        self.seam = seam
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.seam} engine {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def create(self, name: str, **kwargs: object) -> T:
        """Build the engine called ``name``.

        Raises:
            ConfigError: ``name`` is not registered; the message lists the known names.
        """
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown {self.seam} {name!r}; known: {known}") from None
        return factory(**kwargs)
