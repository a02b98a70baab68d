"""The IO manager: frames passed between assets hold student data, so they are pickled and encrypted at rest
with the staging key (AES-256-GCM, lib/vault.py), one file per asset and drop partition."""
import pickle
from pathlib import Path

import dagster as dg

from ..lib.untrusted import safe_join
from ..lib.vault import decrypt_bytes, encrypt_bytes, staging_key


class EncryptedPickleIOManager(dg.ConfigurableIOManager):
    base_dir: str
    home: str
    staging_key: str = ""

    def _path(self, context) -> Path:
        # the identifier holds the partition key, a sender's drop name: it must stay under base_dir
        return safe_join(Path(self.base_dir), *context.get_asset_identifier())

    def _key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        encrypt_bytes(self._key(), pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), path)

    def load_input(self, context: dg.InputContext):
        return pickle.loads(decrypt_bytes(self._key(), self._path(context)))
