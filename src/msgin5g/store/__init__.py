"""Storage backends shared by the network functions.

`sqlite.py` contains the embedded SQLite backend. Each network function defines
the small abstract store it needs (for example `msgin5g.nf.udm.store`) and its
SQLite implementation on top of `SqliteDatabase`.
"""
