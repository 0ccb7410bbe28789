# The chaos checker's Iceberg reader: loads the table through pyiceberg's SqlCatalog on the
# SQLite catalog file and warehouse the iceberg-sink writes, and prints {frame_id: rows} as JSON
# (an empty object while the table has no snapshot).
import json
import sys

import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog

db, warehouse, ident = sys.argv[1:4]
cat = SqlCatalog("sluice", uri="sqlite:///" + db, warehouse=warehouse)
tbl = cat.load_table(ident)
if tbl.current_snapshot() is None:
    print("{}")
    sys.exit(0)
ids = tbl.scan(selected_fields=("frame_id",)).to_arrow().column("frame_id")
counts = pc.value_counts(ids)
print(json.dumps({str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}))
