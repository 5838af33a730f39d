"""Sealed copies of API secrets, so the Cost Explorer endpoint can verify AWS Signature V4 requests.

SigV4 signs with a key derived from the secret itself, so a digest (what ``api_keys`` keeps) cannot verify it.
The server keeps instead a copy of the secret encrypted with the seal key (Fernet: AES-128-CBC + HMAC-SHA256),
stored as a ``key_seal`` control object of the key's project. The seal key is ``COSTLINE_SEAL_KEY`` (give every
server sharing a store the same one) or ``<data_dir>/seal.key``, created with mode 0600 on first use. A copy is
written the first time a key authenticates with its secret (HTTP Basic or Bearer) on any server, so a key works
for SigV4 once it has been used once in the ordinary way, or after ``POST /v1/cloud/imports``.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from costline.store.base import ApiKey, ControlObject, Store, StoreError

log = logging.getLogger(__name__)
KIND = "key_seal"


def load_seal_key(configured: str, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "seal.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    return path.read_bytes().strip()


class Seals:
    """Writes and opens sealed secrets; remembers which keys are sealed already."""

    def __init__(self, store: Store, key: bytes) -> None:
        self.store = store
        self._fernet = Fernet(key)
        self._sealed: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, key: ApiKey, secret: str, now: datetime) -> None:
        """Seal ``secret`` of ``key`` unless this server did already (cheap after the first call)."""
        if key.public_key in self._sealed or key.public_key == "local-admin":
            return
        with self._lock:
            self._sealed.add(key.public_key)
        try:
            if self.store.get_control(key.project_id, KIND, key.public_key) is None:
                token = self._fernet.encrypt(secret.encode()).decode()
                self.store.put_control(ControlObject(key.project_id, KIND, key.public_key, {"sealed": token},
                                                     "auth", now, now))
        except StoreError:
            log.warning("could not seal the secret of key %s", key.public_key)
            with self._lock:
                self._sealed.discard(key.public_key)

    def secret_of(self, key: ApiKey) -> str | None:
        found = self.store.get_control(key.project_id, KIND, key.public_key)
        if found is None:
            return None
        try:
            return self._fernet.decrypt(str(found.spec.get("sealed", "")).encode()).decode()
        except InvalidToken:
            log.warning("the sealed secret of key %s does not open with this server's seal key", key.public_key)
            return None
