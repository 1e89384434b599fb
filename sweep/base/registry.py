"""Name -> implementation lookup shared by the model, SAE and compressor registries."""

from collections.abc import Callable
from typing import Generic, TypeVar

from sweep.base.errors import QfeatError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection; unknown names fail with the list of valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering `obj` under `name`."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The entry called `name`, or a QfeatError naming the valid choices."""
        if name not in self._items:
            choices = ", ".join(self.names())
            raise QfeatError(f"unknown {self.kind} {name!r}; choose one of: {choices}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
