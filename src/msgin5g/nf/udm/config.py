"""UDM configuration (udm.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3
"""

from pathlib import Path

from msgin5g.nf.config import NfConfig, load_config


class UdmConfig(NfConfig):
    pass


def load_udm_config(path: Path | str) -> UdmConfig:
    return load_config(path, UdmConfig)
