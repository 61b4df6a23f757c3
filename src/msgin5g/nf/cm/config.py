"""CM server configuration (cm.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3
"""

from pathlib import Path

from msgin5g.nf.config import NfConfig, load_config


class CmConfig(NfConfig):
    pass


def load_cm_config(path: Path | str) -> CmConfig:
    return load_config(path, CmConfig)
