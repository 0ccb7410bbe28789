// Package all imports every connector the standard sluice binary contains. Adding a connector
// to the binary is one blank import here.
package all

import _ "github.com/sluicehq/sluice/connectors/aggregate"
import _ "github.com/sluicehq/sluice/connectors/datagen"
import _ "github.com/sluicehq/sluice/connectors/file"
import _ "github.com/sluicehq/sluice/connectors/file-source"
import _ "github.com/sluicehq/sluice/connectors/iceberg-sink"
import _ "github.com/sluicehq/sluice/connectors/influxdb-sink"
import _ "github.com/sluicehq/sluice/connectors/mongodb-sink"
import _ "github.com/sluicehq/sluice/connectors/mqtt-source"
import _ "github.com/sluicehq/sluice/connectors/prometheus-sink"
import _ "github.com/sluicehq/sluice/connectors/timescale-sink"
