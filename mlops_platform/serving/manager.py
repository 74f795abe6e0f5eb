"""Which models serve: the verified champion (and challenger), kept in step with the registry.

The champion is loaded at start (waiting and retrying, with a clear log, while the registry is
unreachable) and re-checked every `poll_seconds`: a new champion or a rollback is loaded and
verified off the request path, then swapped in with one reference assignment, so requests
under way finish on the model they started with and none fail. If the registry goes down later,
the current models keep serving. Nothing unverified is ever served: every load goes through
`ModelRegistry.load_verified` (artifact SHA-256, MLmodel layout, and the pipeline's signature
over artifact + passed gate). An alias pointed at a version that fails verification (set by
hand, re-uploaded, never gated) is refused once, logged, counted and shown in /health, and the
last verified model keeps serving; the challenger (shadow/canary) is dropped instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlops_platform.model.scorer import FastScorer
from mlops_platform.registry.signing import SignatureError
from mlops_platform.registry.store import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    TamperedArtifactError,
    UnsafeArtifactError,
    UntrustedTypesError,
)
from mlops_platform.serving.breaker import CircuitBreaker
from mlops_platform.specs import ModelSpec

log = logging.getLogger("mlops.serving")

#: A version failing these is refused for good (not retried every poll, unlike registry errors).
VERIFICATION_ERRORS = (
    SignatureError,
    TamperedArtifactError,
    UnsafeArtifactError,
    UntrustedTypesError,
)


@dataclass(frozen=True)
class ModelHandle:
    name: str
    version: str
    alias: str
    scorer: FastScorer


class ModelManager:
    def __init__(
        self,
        registry: ModelRegistry,
        spec: ModelSpec,
        poll_seconds: float = 5.0,
        load_challenger: bool = True,
        on_change: Callable[[], None] | None = None,
        on_refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        """`on_change` is called (on the refreshing thread) after the models in use change."""
        self.registry = registry
        self.on_change = on_change
        self.spec = spec
        self.poll_seconds = poll_seconds
        self.load_challenger = load_challenger
        self.champion: ModelHandle | None = None
        self.challenger: ModelHandle | None = None
        self.last_error: str | None = None
        #: alias -> {"version", "reason"} while the alias points to a version refused here.
        self.refused: dict[str, dict[str, str]] = {}
        self.on_refused = on_refused
        self._refused_versions: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: alias look-ups go through it: a registry that is down is not waited on every poll
        self.breaker = CircuitBreaker("registry")

    def _load(self, alias: str, version: str) -> ModelHandle:
        pipeline = self.registry.load_verified(self.spec.name, version)
        return ModelHandle(self.spec.name, version, alias, FastScorer(pipeline, self.spec))

    def _load_checked(self, alias: str, version: str) -> ModelHandle | None:
        """The verified model, or None if the version fails verification (remembered)."""
        reason = self._refused_versions.get(version)
        if reason is None:
            try:
                handle = self._load(alias, version)
            except VERIFICATION_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self._refused_versions[version] = reason
                current = self.champion and f"v{self.champion.version}"
                log.error(
                    "refusing %s %s v%s (not verified): %s; still serving champion %s",
                    alias,
                    self.spec.name,
                    version,
                    reason,
                    current,
                )
                if self.on_refused is not None:
                    self.on_refused(alias, version, reason)
            else:
                self.refused.pop(alias, None)
                return handle
        self.refused[alias] = {"version": version, "reason": reason}
        return None

    def refresh(self) -> bool:
        """Follow the aliases once; returns True if anything changed. Never raises."""
        with self._lock:
            changed = False
            try:
                wanted = self.breaker.call(self.registry.alias_version, self.spec.name, CHAMPION)
                if wanted is None or (self.champion and self.champion.version == wanted):
                    self.refused.pop(CHAMPION, None)
                elif (handle := self._load_checked(CHAMPION, wanted)) is not None:
                    previous = self.champion.version if self.champion else None
                    self.champion = handle
                    changed = True
                    log.warning(
                        "champion %s v%s now serving (was %s)",
                        self.spec.name,
                        wanted,
                        previous and f"v{previous}",
                    )
                if self.load_challenger:
                    shadow = self.breaker.call(
                        self.registry.alias_version, self.spec.name, CHALLENGER
                    )
                    serving = self.champion.version if self.champion else None
                    if shadow is None or shadow == serving:
                        changed |= self.challenger is not None
                        self.challenger = None
                        self.refused.pop(CHALLENGER, None)
                    elif self.challenger is None or self.challenger.version != shadow:
                        handle = self._load_checked(CHALLENGER, shadow)
                        changed |= (self.challenger is not None) or (handle is not None)
                        self.challenger = handle
                        if handle is not None:
                            log.warning("challenger %s v%s shadowing", self.spec.name, shadow)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - keep serving; the error is reported
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "registry check failed, still serving %s: %s",
                    self.champion and f"v{self.champion.version}",
                    self.last_error,
                )
            if changed and self.on_change is not None:
                self.on_change()
            return changed

    def wait_for_champion(self, timeout: float | None = None, retry_seconds: float = 2.0) -> None:
        """Block until a verified champion is loaded (or `timeout`), logging each retry."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if self.champion is not None:
                return
            refused = self.refused.get(CHAMPION)
            reason = (
                self.last_error
                or (refused and f"v{refused['version']} refused: {refused['reason']}")
                or f"no '{CHAMPION}' alias on {self.spec.name} yet"
            )
            log.warning("waiting for a champion (%s); retrying in %.0fs", reason, retry_seconds)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no verified champion for {self.spec.name}: {reason}")
            if self._stop.wait(retry_seconds):
                raise RuntimeError("stopped while waiting for a champion")

    def start_watching(self) -> None:
        def watch() -> None:
            while not self._stop.wait(self.poll_seconds):
                self.refresh()

        self._thread = threading.Thread(target=watch, name="alias-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
