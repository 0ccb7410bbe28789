// Package connect is the Sluice connector SDK: the only package a connector imports.
//
// It holds the connector and task interfaces, the Record that flows between Kafka and the
// outside world, the typed configuration declaration from which the runtime validates,
// documents and redacts a connector's settings, the plugin registry, and the errors that steer
// the runtime (retriable or not, which field of which record was bad).
//
// A connector is a package that registers itself in init:
//
//	func init() {
//		connect.Register(connect.Plugin{
//			Name:   "file",
//			Doc:    "Appends records to a file as JSON lines.",
//			Config: Config{},
//			New:    func() connect.Connector { return &Connector{} },
//		})
//	}
//
// The runtime owns batching, retries, offset commits, the error policy and the dead-letter
// queue, metrics and status. Connectors only move data.
package connect
