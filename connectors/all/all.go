// Package all imports every connector the standard sluice binary contains. Adding a connector
// to the binary is one blank import here.
package all

import (
	_ "github.com/sluicehq/sluice/connectors/aggregate"
	_ "github.com/sluicehq/sluice/connectors/datagen"
	_ "github.com/sluicehq/sluice/connectors/file"
	_ "github.com/sluicehq/sluice/connectors/file-source"
	_ "github.com/sluicehq/sluice/connectors/iceberg-sink"
	_ "github.com/sluicehq/sluice/connectors/influxdb-sink"
	_ "github.com/sluicehq/sluice/connectors/mongodb-sink"
	_ "github.com/sluicehq/sluice/connectors/mqtt-source"
	_ "github.com/sluicehq/sluice/connectors/prometheus-sink"
	_ "github.com/sluicehq/sluice/connectors/timescale-sink"
)
